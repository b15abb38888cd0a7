//! Where screens go: a PNG file (headless, tests, the sample run), a Linux framebuffer, or
//! (feature `spi-panel`, on by default) an SPI TFT panel (ST7789, ILI9341) driven from user
//! space over spidev and GPIO lines. Screens themselves are drawn by [`crate::ui`] on any
//! embedded-graphics target.

pub mod fb;
#[cfg(feature = "spi-panel")]
pub mod spi;
