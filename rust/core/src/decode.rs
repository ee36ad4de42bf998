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
//!
//! Files are opened only when they are regular files ([`open_regular`]): a FIFO, device or
//! folder where an image should be is refused without blocking. JPEG scans are decoded with a
//! guard of 1-bits after their entropy-coded data ([`guard_scans`]), so data that ends early —
//! a cut file with its end marker re-appended, or a frame header patched to a larger size — is
//! an error instead of the zero-filled garbage jpeg-decoder would silently produce.

use crate::error::{CoreError, CoreResult};
use crate::resize::area_downscale;
use rayon::prelude::*;
use std::fs::File;
use std::io::{BufReader, Cursor, Read};

/// Largest image accepted (pixels); guards allocations against absurd headers.
pub const MAX_PIXELS: u64 = 1 << 27;

/// Largest image file read (bytes): an uncompressed 16-bit RGBA PNG of `MAX_PIXELS` is 1 GiB.
pub const MAX_FILE_BYTES: u64 = 1 << 31;

/// `O_NONBLOCK` where its value is known (Linux on the common architectures): opening a FIFO
/// then returns at once instead of waiting for a writer. Elsewhere 0, and the `stat` before
/// opening is what keeps FIFOs out.
#[cfg_attr(not(unix), allow(dead_code))]
const fn nonblocking_flag() -> i32 {
    if cfg!(all(
        target_os = "linux",
        any(
            target_arch = "x86_64",
            target_arch = "x86",
            target_arch = "aarch64",
            target_arch = "arm",
            target_arch = "riscv64"
        )
    )) {
        0o4000
    } else {
        0
    }
}

fn file_kind(ft: std::fs::FileType) -> &'static str {
    #[cfg(unix)]
    {
        use std::os::unix::fs::FileTypeExt;
        if ft.is_fifo() {
            return "a FIFO (named pipe)";
        }
        if ft.is_char_device() {
            return "a character device";
        }
        if ft.is_block_device() {
            return "a block device";
        }
        if ft.is_socket() {
            return "a socket";
        }
    }
    if ft.is_dir() {
        "a folder"
    } else {
        "not a regular file"
    }
}

fn not_regular(path: &str, ft: std::fs::FileType) -> CoreError {
    CoreError::decode(
        path,
        format!("is {}; only regular files are read", file_kind(ft)),
    )
}

/// Open `path` for reading only if it is a regular file (checked before opening, and again
/// on the open file in case it was swapped), never blocking on a FIFO; returns its size too.
pub fn open_regular(path: &str) -> CoreResult<(File, u64)> {
    let meta = std::fs::metadata(path).map_err(|e| CoreError::io(path, &e))?;
    if !meta.is_file() {
        return Err(not_regular(path, meta.file_type()));
    }
    let mut options = std::fs::OpenOptions::new();
    options.read(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.custom_flags(nonblocking_flag());
    }
    let file = options.open(path).map_err(|e| CoreError::io(path, &e))?;
    let meta = file.metadata().map_err(|e| CoreError::io(path, &e))?;
    if !meta.is_file() {
        return Err(not_regular(path, meta.file_type()));
    }
    if meta.len() > MAX_FILE_BYTES {
        return Err(CoreError::decode(
            path,
            format!(
                "file is {} bytes, more than the {MAX_FILE_BYTES} accepted for an image",
                meta.len()
            ),
        ));
    }
    Ok((file, meta.len()))
}

/// The whole content of the regular file `path` (see [`open_regular`]).
pub fn read_regular(path: &str) -> CoreResult<Vec<u8>> {
    let (mut file, len) = open_regular(path)?;
    let mut bytes = Vec::with_capacity(len as usize);
    file.read_to_end(&mut bytes)
        .map_err(|e| CoreError::io(path, &e))?;
    Ok(bytes)
}

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
    let (file, _) = open_regular(path)?;
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

/// Where the entropy-coded data of each scan of a JPEG ends, and whether an EOI follows.
#[derive(Debug, PartialEq, Eq)]
struct ScanLayout {
    /// Offsets of the marker (its first fill byte) that ends each scan's entropy-coded data.
    ends: Vec<usize>,
    /// An end-of-image marker follows the last scan.
    eoi: bool,
}

/// Walk the marker segments of `bytes` (from after SOI): lengths are followed, the data of
/// each start-of-scan runs until the first marker that is not a restart (RSTn), stuffing
/// (FF 00) or fill byte. Stops early (without EOI) where the structure breaks; the decoder
/// then reports what is wrong.
fn scan_layout(bytes: &[u8]) -> ScanLayout {
    let mut ends = Vec::new();
    let mut p = 2usize;
    loop {
        while p + 1 < bytes.len() && bytes[p] == 0xFF && bytes[p + 1] == 0xFF {
            p += 1; // fill bytes before a marker
        }
        if p + 1 >= bytes.len() || bytes[p] != 0xFF {
            return ScanLayout { ends, eoi: false };
        }
        let marker = bytes[p + 1];
        match marker {
            0xD9 => return ScanLayout { ends, eoi: true },
            0x01 | 0xD0..=0xD7 => {
                p += 2; // standalone markers
                continue;
            }
            _ => {}
        }
        if p + 4 > bytes.len() {
            return ScanLayout { ends, eoi: false };
        }
        let len = u16::from_be_bytes([bytes[p + 2], bytes[p + 3]]) as usize;
        p += 2 + len;
        if marker != 0xDA {
            continue;
        }
        // Entropy-coded data: FF is followed by 00 (a stuffed FF) or RSTn inside it.
        let mut q = p;
        loop {
            if q + 1 >= bytes.len() {
                return ScanLayout { ends, eoi: false };
            }
            if bytes[q] == 0xFF && !matches!(bytes[q + 1], 0x00 | 0xD0..=0xD7) {
                break;
            }
            q += 1;
        }
        ends.push(q);
        p = q;
    }
}

/// 128 one-bits in entropy-coded form (FF is written FF 00). A run of 1-bits is never a valid
/// Huffman code (JPEG reserves the all-ones codes), so a decoder that needs more data than a
/// scan holds fails on the guard instead of decoding zero-filled bits as pixels.
const SCAN_GUARD: [u8; 32] = {
    let mut g = [0u8; 32];
    let mut i = 0;
    while i < 32 {
        g[i] = 0xFF;
        i += 2;
    }
    g
};

/// A copy of `bytes` with [`SCAN_GUARD`] inserted where each scan's entropy-coded data ends.
///
/// A complete scan never reads its guard (after the last block the decoder skips to the next
/// marker), so the pixels are the same as without it; an incomplete one hits it and errors.
fn guard_scans(bytes: &[u8], ends: &[usize]) -> Vec<u8> {
    let mut out = Vec::with_capacity(bytes.len() + ends.len() * SCAN_GUARD.len());
    let mut from = 0;
    for &end in ends {
        out.extend_from_slice(&bytes[from..end]);
        out.extend_from_slice(&SCAN_GUARD);
        from = end;
    }
    out.extend_from_slice(&bytes[from..]);
    out
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
    let layout = scan_layout(bytes);
    if !layout.eoi {
        return Err(CoreError::decode(
            name,
            "truncated JPEG (no end-of-image marker after the image data)",
        ));
    }
    let guarded = guard_scans(bytes, &layout.ends);
    let mut d = jpeg_decoder::Decoder::new(Cursor::new(guarded.as_slice()));
    d.set_max_decoding_buffer_size((MAX_PIXELS * 4) as usize);
    let raw = d.decode().map_err(|e| match e {
        jpeg_decoder::Error::Format(msg) if msg.contains("huffman") => CoreError::decode(
            name,
            format!(
                "truncated or corrupt JPEG: the image data is invalid or ends before the {width}x{height} \
                 pixels its frame header declares (a cut file, or a patched header)"
            ),
        ),
        other => jpeg_error(other, name),
    })?;
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
    let bytes = read_regular(path)?;
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
    fn scan_layout_walks_segments() {
        // SOI, APP0 (len 4, payload contains FF D9 which must be skipped), SOS (len 2), data, no EOI.
        let mut b = vec![
            0xFF, 0xD8, 0xFF, 0xE0, 0x00, 0x04, 0xFF, 0xD9, 0xFF, 0xDA, 0x00, 0x02, 1, 2, 0xFF,
            0x00, 3,
        ];
        assert_eq!(
            scan_layout(&b),
            ScanLayout {
                ends: vec![],
                eoi: false
            }
        );
        b.extend_from_slice(&[0xFF, 0xD0, 4, 0xFF, 0xFF, 0xD9]); // RST0 inside the data, a fill byte, EOI
        assert_eq!(
            scan_layout(&b),
            ScanLayout {
                ends: vec![20],
                eoi: true
            }
        );
        let guarded = guard_scans(&b, &[20]);
        assert_eq!(&guarded[..20], &b[..20]);
        assert_eq!(&guarded[20..52], &SCAN_GUARD);
        assert_eq!(&guarded[52..], &b[20..]);
    }

    /// Bit writer for JPEG entropy-coded data: MSB first, FF stuffed as FF 00, padded with 1s.
    struct Bits {
        out: Vec<u8>,
        acc: u32,
        n: u32,
    }

    impl Bits {
        fn put(&mut self, value: u32, len: u32) {
            for i in (0..len).rev() {
                self.acc = (self.acc << 1) | ((value >> i) & 1);
                self.n += 1;
                if self.n == 8 {
                    self.out.push(self.acc as u8);
                    if self.acc == 0xFF {
                        self.out.push(0x00);
                    }
                    self.acc = 0;
                    self.n = 0;
                }
            }
        }
        fn finish(mut self) -> Vec<u8> {
            while self.n != 0 {
                self.put(1, 1);
            }
            self.out
        }
    }

    fn segment(out: &mut Vec<u8>, marker: u8, payload: &[u8]) {
        out.extend_from_slice(&[0xFF, marker]);
        out.extend_from_slice(&((payload.len() + 2) as u16).to_be_bytes());
        out.extend_from_slice(payload);
    }

    /// A baseline grayscale JPEG of flat 8x8 blocks (DC only, quantisation 1), encoded here
    /// because jpeg-decoder has no encoder. `blocks[r][c]` is the gray value of each block.
    /// Returns (file, offset of the entropy-coded data, offset of the frame height field).
    fn flat_jpeg(blocks: &[Vec<u8>]) -> (Vec<u8>, usize, usize) {
        let (h, w) = (blocks.len() * 8, blocks[0].len() * 8);
        let mut f = vec![0xFF, 0xD8];
        let mut dqt = vec![0x00];
        dqt.extend_from_slice(&[1u8; 64]);
        segment(&mut f, 0xDB, &dqt);
        let sof_height = f.len() + 5;
        let mut sof = vec![8];
        sof.extend_from_slice(&(h as u16).to_be_bytes());
        sof.extend_from_slice(&(w as u16).to_be_bytes());
        sof.extend_from_slice(&[1, 1, 0x11, 0]);
        segment(&mut f, 0xC0, &sof);
        // DC table: categories 0..=11, all 4-bit codes 0000..1011 (code = category).
        let mut dht = vec![0x00, 0, 0, 0, 12];
        dht.extend_from_slice(&[0u8; 12]);
        dht.extend(0u8..12);
        segment(&mut f, 0xC4, &dht);
        // AC table: only end-of-block (0x00), code "0".
        let mut dht = vec![0x10, 1];
        dht.extend_from_slice(&[0u8; 15]);
        dht.push(0x00);
        segment(&mut f, 0xC4, &dht);
        segment(&mut f, 0xDA, &[1, 1, 0x00, 0, 63, 0]);
        let data_at = f.len();
        let mut bits = Bits {
            out: Vec::new(),
            acc: 0,
            n: 0,
        };
        let mut prev = 0i32;
        for row in blocks {
            for &v in row {
                let dc = 8 * (v as i32 - 128); // flat block: pixel = dc / 8 + 128
                let diff = dc - prev;
                prev = dc;
                let cat = 32 - diff.unsigned_abs().leading_zeros();
                bits.put(cat, 4);
                let low = if diff >= 0 {
                    diff
                } else {
                    diff + (1 << cat) - 1
                };
                bits.put(low as u32, cat);
                bits.put(0, 1); // end of block
            }
        }
        f.extend_from_slice(&bits.finish());
        f.extend_from_slice(&[0xFF, 0xD9]);
        (f, data_at, sof_height)
    }

    fn test_blocks() -> Vec<Vec<u8>> {
        (0..4)
            .map(|r| (0..6).map(|c| (20 + 37 * r + 23 * c) as u8).collect())
            .collect()
    }

    #[test]
    fn complete_jpeg_decodes_exactly_with_the_guard() {
        let blocks = test_blocks();
        let (jpeg, _, _) = flat_jpeg(&blocks);
        let img = decode_bytes(&jpeg, "flat.jpg").unwrap();
        assert_eq!((img.width, img.height, img.channels), (48, 32, 1));
        for (y, row) in img.data.chunks_exact(48).enumerate() {
            for (x, &px) in row.iter().enumerate() {
                let want = blocks[y / 8][x / 8] as i32;
                assert!(
                    (px as i32 - want).abs() <= 1,
                    "pixel ({x}, {y}) = {px}, want {want}"
                );
            }
        }
    }

    #[test]
    fn jpeg_cut_short_with_its_end_marker_reappended_is_an_error() {
        let (jpeg, data_at, _) = flat_jpeg(&test_blocks());
        let data_len = jpeg.len() - 2 - data_at;
        for keep in [0, 1, data_len / 3, data_len / 2, data_len - 4] {
            let mut cut = jpeg[..data_at + keep].to_vec();
            if cut.last() == Some(&0xFF) {
                cut.pop(); // do not leave half a stuffed byte
            }
            cut.extend_from_slice(&[0xFF, 0xD9]);
            let err = decode_bytes(&cut, "cut.jpg").unwrap_err().to_string();
            assert!(
                err.starts_with("cut.jpg: truncated or corrupt JPEG"),
                "kept {keep} of {data_len} bytes: {err}"
            );
        }
        // Without the end marker, too.
        let err = decode_bytes(&jpeg[..data_at + data_len / 2], "open.jpg")
            .unwrap_err()
            .to_string();
        assert!(err.starts_with("open.jpg: truncated JPEG"), "{err}");
    }

    #[test]
    fn jpeg_frame_header_patched_larger_is_an_error() {
        let (jpeg, _, height_at) = flat_jpeg(&test_blocks());
        for (at, value) in [(height_at, 64u16), (height_at, 33), (height_at + 2, 56)] {
            let mut patched = jpeg.clone();
            patched[at..at + 2].copy_from_slice(&value.to_be_bytes());
            let err = decode_bytes(&patched, "big.jpg").unwrap_err().to_string();
            assert!(
                err.starts_with("big.jpg: truncated or corrupt JPEG"),
                "{err}"
            );
        }
    }

    #[test]
    fn only_regular_files_are_opened() {
        let dir = std::env::temp_dir();
        let err = probe_file(dir.to_str().unwrap()).unwrap_err().to_string();
        assert!(
            err.ends_with("is a folder; only regular files are read"),
            "{err}"
        );
        if std::path::Path::new("/dev/null").exists() {
            let err = decode_files(&["/dev/null".to_string()], 1)
                .unwrap_err()
                .to_string();
            assert_eq!(
                err,
                "/dev/null: is a character device; only regular files are read"
            );
        }
        let fifo = dir.join(format!("nerfprune-test-fifo-{}", std::process::id()));
        let made = std::process::Command::new("mkfifo").arg(&fifo).status();
        if matches!(made, Ok(s) if s.success()) {
            let name = fifo.to_str().unwrap().to_string();
            let probe = probe_file(&name).unwrap_err().to_string(); // must not block
            let read = read_regular(&name).unwrap_err().to_string();
            std::fs::remove_file(&fifo).unwrap();
            assert!(
                probe.ends_with("is a FIFO (named pipe); only regular files are read"),
                "{probe}"
            );
            assert_eq!(probe, read);
        }
        let err = probe_file("/nonexistent/x.png").unwrap_err().to_string();
        assert!(
            err.starts_with("/nonexistent/x.png: cannot read file"),
            "{err}"
        );
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
