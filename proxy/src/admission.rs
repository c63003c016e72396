//! Admission toward the origin: the adaptive concurrency limit and the queue in front of it.
