//! XaeroFlux core: pure, I/O-free building blocks (work in progress).
