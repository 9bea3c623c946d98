"""The paper's evaluation protocol: MATLAB-exact bicubic LR, benchmark datasets, PSNR/SSIM."""
