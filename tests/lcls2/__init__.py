"""Writers of LCLS-II test inputs with psana itself: a SmallData file and an XTC2 run."""
