"""Lung segmentation, a stage of the DAG: ground truth carried onto the cache grid
(:mod:`~readrace.segmentation.truth`), the mask arrays' interface
(:mod:`~readrace.segmentation.masks`), a MONAI U-Net for radiographs
(:mod:`~readrace.segmentation.unet`), Hounsfield-unit lungs for CT
(:mod:`~readrace.segmentation.ct`), quality against ground truth
(:mod:`~readrace.segmentation.quality`) and the overlay figure
(:mod:`~readrace.segmentation.figures`)."""
