//! Black-box test package: see the files under `tests/`.
