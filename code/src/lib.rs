//! shouhu-code: placeholder, replaced below.
