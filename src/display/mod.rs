//! Where screens go: a PNG file (headless, tests, the sample run) or a Linux framebuffer.
//! Screens themselves are drawn by [`crate::ui`] on any embedded-graphics target.

pub mod fb;
