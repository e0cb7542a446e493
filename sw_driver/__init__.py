"""Host-side driver: lowers layers to GEMMs, tiles them onto the accelerator and runs them."""
