//! Rate limits: per client address, per subject and global.
