"""Images as the package handles them, before any model: ``arrays`` (PIL <-> numpy <-> tensor, odd image modes),
``reading`` (headers before pixels, the one size limit, what an image file is), ``labels`` (class-index maps <->
one-hot inputs, instance boundaries, class colours) and ``metrics`` (L1, PSNR, SSIM)."""
