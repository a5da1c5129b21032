"""Detection data: the pinned datasets (`datasets`), your YOLO or COCO files (`files`,
`coco`), the shared label checks (`labels`) and examples with box augmentation (`aug`)."""
