//! An `embedded-graphics` draw target over an in-memory RGB image, so the heatmap's caption and
//! banner are drawn with the same text code as the screens (`ui`), which draw on this kind of
//! image for PNG output and SPI panels and straight onto a framebuffer.

use std::convert::Infallible;

use embedded_graphics::{pixelcolor::Rgb888, prelude::*};
use image::RgbImage;

/// An RGB image as an `embedded-graphics` draw target.
pub struct Canvas<'a> {
    img: &'a mut RgbImage,
}

impl<'a> Canvas<'a> {
    /// A canvas drawing onto `img`.
    pub fn new(img: &'a mut RgbImage) -> Self {
        Canvas { img }
    }
}

impl OriginDimensions for Canvas<'_> {
    fn size(&self) -> Size {
        Size::new(self.img.width(), self.img.height())
    }
}

impl DrawTarget for Canvas<'_> {
    type Color = Rgb888;
    type Error = Infallible;

    fn draw_iter<I: IntoIterator<Item = Pixel<Rgb888>>>(
        &mut self,
        pixels: I,
    ) -> Result<(), Infallible> {
        let (w, h) = (self.img.width() as i32, self.img.height() as i32);
        for Pixel(p, c) in pixels {
            if (0..w).contains(&p.x) && (0..h).contains(&p.y) {
                self.img
                    .put_pixel(p.x as u32, p.y as u32, image::Rgb([c.r(), c.g(), c.b()]));
            }
        }
        Ok(())
    }
}
