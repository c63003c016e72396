//! The waiting room for `register`: signed tickets admitted in order at the rate the origin has spare.
