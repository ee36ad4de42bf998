//! Image decoding: PNG (1/2/4/8/16-bit; gray, gray+alpha, RGB, RGBA, palette)
//! and baseline/progressive JPEG, to 8-bit sRGB samples.
//!
//! [`decode_files`] decodes a whole scene in parallel (rayon, one file per task)
//! straight into one contiguous `[N, H, W, C]` uint8 buffer: a cheap header pass
//! fixes the common size and channel count (C = 4 when any file has alpha, else
//! 3), then every file is decoded into its own slice of the buffer, optionally
//! area-downscaled by an integer factor on the way ([`crate::resize`]).
//!
//! Every error names the file and the problem ("…/r_3.png: truncated PNG …").

use crate::error::{CoreError, CoreResult};
use crate::resize::area_downscale;
use rayon::prelude::*;
use std::fs::File;
use std::io::{BufReader, Cursor, Read};

/// Largest image accepted (pixels); guards allocations against absurd headers.
pub const MAX_PIXELS: u64 = 1 << 27;

/// Header facts of one image file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ImageInfo {
    pub width: u32,
    pub height: u32,
    /// True when the decoded image carries an alpha channel (incl. PNG tRNS).
    pub has_alpha: bool,
}

/// One decoded 8-bit image, row-major, `channels` interleaved samples per pixel (1..=4).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Image {
    pub width: u32,
    pub height: u32,
    pub channels: usize,
    pub data: Vec<u8>,
}

/// All frames of a scene in one buffer: `[n, height, width, channels]` uint8.
#[derive(Debug)]
pub struct ImageStack {
    pub n: usize,
    pub height: usize,
    pub width: usize,
    pub channels: usize,
    pub data: Vec<u8>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Png,
    Jpeg,
}

fn sniff(head: &[u8], name: &str) -> CoreResult<Kind> {
    if head.starts_with(b"\x89PNG\r\n\x1a\n") {
        Ok(Kind::Png)
    } else if head.starts_with(&[0xFF, 0xD8, 0xFF]) {
        Ok(Kind::Jpeg)
    } else if head.is_empty() {
        Err(CoreError::decode(
            name,
            "empty file (0 bytes), not an image",
        ))
    } else {
        Err(CoreError::decode(
            name,
            "not a PNG or JPEG image (unrecognised file signature)",
        ))
    }
}

fn check_size(width: u32, height: u32, name: &str) -> CoreResult<()> {
    if width == 0 || height == 0 || (width as u64) * (height as u64) > MAX_PIXELS {
        return Err(CoreError::decode(
            name,
            format!("unsupported image size {width}x{height}"),
        ));
    }
    Ok(())
}

fn png_error(e: png::DecodingError, name: &str) -> CoreError {
    match e {
        png::DecodingError::IoError(io) if io.kind() == std::io::ErrorKind::UnexpectedEof => {
            CoreError::decode(
                name,
                "truncated PNG (the file ends before the image data does)",
            )
        }
        other => CoreError::decode(name, format!("corrupt PNG: {other}")),
    }
}

fn jpeg_error(e: jpeg_decoder::Error, name: &str) -> CoreError {
    match e {
        jpeg_decoder::Error::Io(io) if io.kind() == std::io::ErrorKind::UnexpectedEof => {
            CoreError::decode(
                name,
                "truncated JPEG (the file ends before the image data does)",
            )
        }
        other => CoreError::decode(name, format!("corrupt JPEG: {other}")),
    }
}

fn png_decoder<R: std::io::BufRead + std::io::Seek>(r: R) -> png::Decoder<R> {
    let mut d = png::Decoder::new(r);
    // Palette -> RGB(A), tRNS -> alpha, 1/2/4-bit gray -> 8-bit. 16-bit is kept and rounded below.
    d.set_transformations(png::Transformations::EXPAND);
    d
}

fn png_channels(color: png::ColorType) -> usize {
    match color {
        png::ColorType::Grayscale => 1,
        png::ColorType::GrayscaleAlpha => 2,
        png::ColorType::Rgb => 3,
        png::ColorType::Rgba => 4,
        png::ColorType::Indexed => 3, // never after EXPAND
    }
}

fn jpeg_channels(format: jpeg_decoder::PixelFormat, name: &str) -> CoreResult<usize> {
    match format {
        jpeg_decoder::PixelFormat::L8 | jpeg_decoder::PixelFormat::L16 => Ok(1),
        jpeg_decoder::PixelFormat::RGB24 => Ok(3),
        jpeg_decoder::PixelFormat::CMYK32 => {
            Err(CoreError::decode(name, "unsupported JPEG: CMYK colour"))
        }
    }
}

/// Read only the header of an image file: size and whether it has alpha.
pub fn probe_file(path: &str) -> CoreResult<ImageInfo> {
    let file = File::open(path).map_err(|e| CoreError::io(path, &e))?;
    let mut reader = BufReader::new(file);
    let mut head = [0u8; 8];
    let got = read_up_to(&mut reader, &mut head).map_err(|e| CoreError::io(path, &e))?;
    let kind = sniff(&head[..got], path)?;
    use std::io::Seek;
    reader
        .seek(std::io::SeekFrom::Start(0))
        .map_err(|e| CoreError::io(path, &e))?;
    let info = match kind {
        Kind::Png => {
            let r = png_decoder(reader)
                .read_info()
                .map_err(|e| png_error(e, path))?;
            let (color, _) = r.output_color_type();
            let i = r.info();
            ImageInfo {
                width: i.width,
                height: i.height,
                has_alpha: matches!(png_channels(color), 2 | 4),
            }
        }
        Kind::Jpeg => {
            let mut d = jpeg_decoder::Decoder::new(reader);
            d.read_info().map_err(|e| jpeg_error(e, path))?;
            let i = d
                .info()
                .ok_or_else(|| CoreError::decode(path, "corrupt JPEG: no frame header"))?;
            jpeg_channels(i.pixel_format, path)?;
            ImageInfo {
                width: i.width as u32,
                height: i.height as u32,
                has_alpha: false,
            }
        }
    };
    check_size(info.width, info.height, path)?;
    Ok(info)
}

fn read_up_to(r: &mut impl Read, buf: &mut [u8]) -> std::io::Result<usize> {
    let mut got = 0;
    while got < buf.len() {
        match r.read(&mut buf[got..])? {
            0 => break,
            k => got += k,
        }
    }
    Ok(got)
}

/// Rounds a 16-bit sample to 8 bits (v * 255 / 65535, to nearest).
#[inline]
fn to_u8(v: u16) -> u8 {
    ((v as u32 * 255 + 32767) / 65535) as u8
}

fn decode_png(bytes: &[u8], name: &str) -> CoreResult<Image> {
    let mut reader = png_decoder(Cursor::new(bytes))
        .read_info()
        .map_err(|e| png_error(e, name))?;
    let (width, height) = (reader.info().width, reader.info().height);
    check_size(width, height, name)?;
    let (color, depth) = reader.output_color_type();
    let size = reader
        .output_buffer_size()
        .ok_or_else(|| CoreError::decode(name, "unsupported image size (overflow)"))?;
    let mut buf = vec![0u8; size];
    let frame = reader
        .next_frame(&mut buf)
        .map_err(|e| png_error(e, name))?;
    buf.truncate(frame.buffer_size());
    let channels = png_channels(color);
    let data = if depth == png::BitDepth::Sixteen {
        buf.chunks_exact(2)
            .map(|b| to_u8(u16::from_be_bytes([b[0], b[1]])))
            .collect()
    } else {
        buf
    };
    Ok(Image {
        width,
        height,
        channels,
        data,
    })
}

/// True when the JPEG's entropy-coded data is followed by an end-of-image marker
/// (jpeg-decoder silently pads a truncated scan with zeros, so check it here).
fn jpeg_has_eoi(bytes: &[u8]) -> bool {
    // Walk the marker segments up to the first start-of-scan, then look for FF D9.
    let mut p = 2usize;
    while p + 4 <= bytes.len() {
        if bytes[p] != 0xFF {
            return false;
        }
        let marker = bytes[p + 1];
        if marker == 0xFF {
            p += 1; // fill byte
            continue;
        }
        if marker == 0xD9 {
            return true;
        }
        let len = u16::from_be_bytes([bytes[p + 2], bytes[p + 3]]) as usize;
        if marker == 0xDA {
            let scan = p + 2 + len;
            return scan <= bytes.len() && bytes[scan..].windows(2).any(|w| w == [0xFF, 0xD9]);
        }
        p += 2 + len;
    }
    false
}

fn decode_jpeg(bytes: &[u8], name: &str) -> CoreResult<Image> {
    let mut d = jpeg_decoder::Decoder::new(Cursor::new(bytes));
    d.set_max_decoding_buffer_size((MAX_PIXELS * 4) as usize);
    d.read_info().map_err(|e| jpeg_error(e, name))?;
    let info = d
        .info()
        .ok_or_else(|| CoreError::decode(name, "corrupt JPEG: no frame header"))?;
    let (width, height) = (info.width as u32, info.height as u32);
    check_size(width, height, name)?;
    let channels = jpeg_channels(info.pixel_format, name)?;
    if !jpeg_has_eoi(bytes) {
        return Err(CoreError::decode(
            name,
            "truncated JPEG (no end-of-image marker after the image data)",
        ));
    }
    let raw = d.decode().map_err(|e| jpeg_error(e, name))?;
    let data = if info.pixel_format == jpeg_decoder::PixelFormat::L16 {
        raw.chunks_exact(2)
            .map(|b| to_u8(u16::from_be_bytes([b[0], b[1]])))
            .collect()
    } else {
        raw
    };
    let expected = width as usize * height as usize * channels;
    if data.len() != expected {
        return Err(CoreError::decode(
            name,
            "corrupt JPEG: decoded size does not match its header",
        ));
    }
    Ok(Image {
        width,
        height,
        channels,
        data,
    })
}

/// Decode PNG or JPEG bytes (`name` is only used in error messages).
pub fn decode_bytes(bytes: &[u8], name: &str) -> CoreResult<Image> {
    match sniff(&bytes[..bytes.len().min(8)], name)? {
        Kind::Png => decode_png(bytes, name),
        Kind::Jpeg => decode_jpeg(bytes, name),
    }
}

/// Copy `src` (`src_c` samples per pixel: gray, gray+alpha, RGB, RGBA) into
/// `dst` with `dst_c` = 3 (RGB) or 4 (RGBA, opaque alpha added where missing).
pub fn convert_channels(src: &[u8], src_c: usize, dst: &mut [u8], dst_c: usize) {
    debug_assert!(dst_c == 3 || dst_c == 4);
    for (s, d) in src.chunks_exact(src_c).zip(dst.chunks_exact_mut(dst_c)) {
        let (rgb, a) = match src_c {
            1 => ([s[0]; 3], 255),
            2 => ([s[0]; 3], s[1]),
            3 => ([s[0], s[1], s[2]], 255),
            _ => ([s[0], s[1], s[2]], s[3]),
        };
        d[..3].copy_from_slice(&rgb);
        if dst_c == 4 {
            d[3] = a;
        }
    }
}

/// Decode PNG bytes straight into `out` when the file's samples already have the
/// layout of the scene buffer (8-bit RGB into 3 channels, 8-bit RGBA into 4).
/// Returns false, touching nothing, when a conversion is needed.
fn decode_png_direct(
    bytes: &[u8],
    name: &str,
    expect: (u32, u32),
    channels: usize,
    out: &mut [u8],
) -> CoreResult<bool> {
    let mut reader = png_decoder(Cursor::new(bytes))
        .read_info()
        .map_err(|e| png_error(e, name))?;
    let (color, depth) = reader.output_color_type();
    let same_layout = depth == png::BitDepth::Eight && png_channels(color) == channels;
    if !same_layout
        || (reader.info().width, reader.info().height) != expect
        || reader.output_buffer_size() != Some(out.len())
    {
        return Ok(false);
    }
    reader.next_frame(out).map_err(|e| png_error(e, name))?;
    Ok(true)
}

/// Decode one file into `out` (`[H/factor, W/factor, channels]`), checking its size.
fn decode_file_into(
    path: &str,
    expect: (u32, u32),
    factor: usize,
    channels: usize,
    out: &mut [u8],
) -> CoreResult<()> {
    let bytes = std::fs::read(path).map_err(|e| CoreError::io(path, &e))?;
    if factor == 1
        && sniff(&bytes[..bytes.len().min(8)], path)? == Kind::Png
        && decode_png_direct(&bytes, path, expect, channels, out)?
    {
        return Ok(());
    }
    let img = decode_bytes(&bytes, path)?;
    if (img.width, img.height) != expect {
        return Err(CoreError::decode(
            path,
            format!(
                "image is {}x{}, its header said {}x{} (file changed while loading?)",
                img.width, img.height, expect.0, expect.1
            ),
        ));
    }
    if factor == 1 {
        convert_channels(&img.data, img.channels, out, channels);
    } else {
        let mut full = vec![0u8; img.width as usize * img.height as usize * channels];
        convert_channels(&img.data, img.channels, &mut full, channels);
        area_downscale(
            &full,
            img.width as usize,
            img.height as usize,
            channels,
            factor,
            out,
        );
    }
    Ok(())
}

/// First error of a list of per-file results, in file order (deterministic under rayon).
fn first_error<T>(results: Vec<CoreResult<T>>) -> CoreResult<Vec<T>> {
    results.into_iter().collect()
}

/// Decode all `paths` in parallel into one `[N, H/factor, W/factor, C]` buffer.
///
/// All files must share one size (the first file's); C is 4 when any file has
/// alpha (opaque files get alpha 255), else 3. `factor` >= 1 area-downscales
/// (floor of the size; trailing rows/columns that do not fill a block are dropped).
pub fn decode_files(paths: &[String], factor: usize) -> CoreResult<ImageStack> {
    if paths.is_empty() {
        return Err(CoreError::InvalidArgument(
            "no image files given (empty frame list)".into(),
        ));
    }
    if factor == 0 {
        return Err(CoreError::InvalidArgument(
            "downscale factor must be >= 1".into(),
        ));
    }
    let infos = first_error(paths.par_iter().map(|p| probe_file(p)).collect())?;
    let first = infos[0];
    for (p, i) in paths.iter().zip(&infos) {
        if (i.width, i.height) != (first.width, first.height) {
            return Err(CoreError::decode(
                p.as_str(),
                format!(
                    "image is {}x{} but {} is {}x{}; all views of a scene must share one size",
                    i.width, i.height, paths[0], first.width, first.height
                ),
            ));
        }
    }
    let (width, height) = (
        first.width as usize / factor,
        first.height as usize / factor,
    );
    if width == 0 || height == 0 {
        return Err(CoreError::InvalidArgument(format!(
            "downscale factor {factor} is larger than the images ({}x{})",
            first.width, first.height
        )));
    }
    let channels = if infos.iter().any(|i| i.has_alpha) {
        4
    } else {
        3
    };
    let frame = width * height * channels;
    let mut data = crate::buffer::zeroed(frame * paths.len());
    let expect = (first.width, first.height);
    let results: Vec<CoreResult<()>> = data
        .par_chunks_mut(frame)
        .zip(paths.par_iter())
        .map(|(out, p)| decode_file_into(p, expect, factor, channels, out))
        .collect();
    first_error(results)?;
    Ok(ImageStack {
        n: paths.len(),
        height,
        width,
        channels,
        data,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// Encode a small PNG with the png crate's encoder.
    pub(crate) fn encode_png(
        w: u32,
        h: u32,
        color: png::ColorType,
        depth: png::BitDepth,
        data: &[u8],
    ) -> Vec<u8> {
        let mut out = Vec::new();
        {
            let mut enc = png::Encoder::new(&mut out, w, h);
            enc.set_color(color);
            enc.set_depth(depth);
            if color == png::ColorType::Indexed {
                enc.set_palette(vec![0, 0, 0, 255, 0, 0, 0, 255, 0, 10, 20, 30]);
                enc.set_trns(vec![255, 128, 0, 255]);
            }
            let mut writer = enc.write_header().unwrap();
            writer.write_image_data(data).unwrap();
        }
        out
    }

    #[test]
    fn png_color_types_decode_to_expected_samples() {
        let rgba = encode_png(
            2,
            1,
            png::ColorType::Rgba,
            png::BitDepth::Eight,
            &[1, 2, 3, 4, 5, 6, 7, 8],
        );
        let img = decode_bytes(&rgba, "a.png").unwrap();
        assert_eq!((img.width, img.height, img.channels), (2, 1, 4));
        assert_eq!(img.data, vec![1, 2, 3, 4, 5, 6, 7, 8]);

        let g16 = encode_png(
            2,
            1,
            png::ColorType::Grayscale,
            png::BitDepth::Sixteen,
            &[0xFF, 0xFF, 0x80, 0x00],
        );
        let img = decode_bytes(&g16, "g.png").unwrap();
        assert_eq!(img.channels, 1);
        assert_eq!(img.data, vec![255, 128]);

        let pal = encode_png(
            4,
            1,
            png::ColorType::Indexed,
            png::BitDepth::Eight,
            &[0, 1, 2, 3],
        );
        let img = decode_bytes(&pal, "p.png").unwrap();
        assert_eq!(img.channels, 4);
        assert_eq!(
            img.data,
            vec![0, 0, 0, 255, 255, 0, 0, 128, 0, 255, 0, 0, 10, 20, 30, 255]
        );

        let ga = encode_png(
            1,
            1,
            png::ColorType::GrayscaleAlpha,
            png::BitDepth::Eight,
            &[9, 200],
        );
        let mut out = [0u8; 4];
        let img = decode_bytes(&ga, "ga.png").unwrap();
        convert_channels(&img.data, img.channels, &mut out, 4);
        assert_eq!(out, [9, 9, 9, 200]);
    }

    #[test]
    fn truncated_and_foreign_bytes_name_the_problem() {
        let png = encode_png(
            16,
            16,
            png::ColorType::Rgb,
            png::BitDepth::Eight,
            &[7u8; 16 * 16 * 3],
        );
        let err = decode_bytes(&png[..png.len() / 2], "x/r_3.png")
            .unwrap_err()
            .to_string();
        assert!(err.starts_with("x/r_3.png: "), "{err}");
        assert!(err.contains("PNG"), "{err}");
        let err = decode_bytes(b"GIF89a......", "y.gif")
            .unwrap_err()
            .to_string();
        assert_eq!(
            err,
            "y.gif: not a PNG or JPEG image (unrecognised file signature)"
        );
        let err = decode_bytes(&[0xFF, 0xD8, 0xFF, 0xE0, 0, 16], "t.jpg")
            .unwrap_err()
            .to_string();
        assert!(err.starts_with("t.jpg: ") && err.contains("JPEG"), "{err}");
    }

    #[test]
    fn eoi_scan_walks_segments() {
        // SOI, APP0 (len 4, payload contains FF D9 which must be skipped), SOS (len 2), data, no EOI.
        let mut b = vec![
            0xFF, 0xD8, 0xFF, 0xE0, 0x00, 0x04, 0xFF, 0xD9, 0xFF, 0xDA, 0x00, 0x02, 1, 2, 3,
        ];
        assert!(!jpeg_has_eoi(&b));
        b.extend_from_slice(&[0xFF, 0xD9]);
        assert!(jpeg_has_eoi(&b));
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]
        /// Fuzz target: arbitrary bytes never panic; they decode or return an error naming the file.
        #[test]
        fn random_bytes_never_panic(data in proptest::collection::vec(any::<u8>(), 0..512), png_head in any::<bool>()) {
            let mut bytes = if png_head { b"\x89PNG\r\n\x1a\n".to_vec() } else { vec![0xFF, 0xD8, 0xFF] };
            bytes.extend_from_slice(&data);
            if let Err(e) = decode_bytes(&bytes, "fuzz.img") {
                prop_assert!(e.to_string().starts_with("fuzz.img: "));
            }
        }

        /// Fuzz target: a valid PNG with bytes flipped or cut never panics.
        #[test]
        fn mutated_png_never_panics(flips in proptest::collection::vec((any::<usize>(), any::<u8>()), 1..8), cut in any::<usize>()) {
            let pixels: Vec<u8> = (0..8 * 8 * 4).map(|i| (i * 37 % 251) as u8).collect();
            let mut bytes = encode_png(8, 8, png::ColorType::Rgba, png::BitDepth::Eight, &pixels);
            for (at, v) in flips {
                let n = bytes.len();
                bytes[at % n] ^= v;
            }
            bytes.truncate(cut % (bytes.len() + 1));
            if let Ok(img) = decode_bytes(&bytes, "m.png") {
                prop_assert_eq!(img.data.len(), img.width as usize * img.height as usize * img.channels);
            }
        }
    }
}
