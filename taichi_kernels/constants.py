"""Constants shared by the Taichi kernels and their torch references (`taichi_kernels.reference`).

Both sides import them from here, so a kernel and its reference cannot drift apart.
"""

UNDISTORT_ITERATIONS = 10  # Newton steps used to invert the OpenCV distortion model
PDF_EPS = 1e-5  # added to every coarse weight before building the pdf (original NeRF)
