"""Scoring: FDDB with the official protocol (fddb_eval, fddb_regions), WIDER val with COCO AP
(wider_ap), and the FDDB report (report). Torch-free."""
