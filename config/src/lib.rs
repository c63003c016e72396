//! shouhu-config: placeholder, replaced below.
