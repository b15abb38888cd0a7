//! Screens drawn in memory in a display's own pixel layout, then handed to the device in one
//! go: the framebuffer ([`super::fb`]) writes the bytes to `/dev/fbN`, DRM ([`super::drm`])
//! copies them into a dumb buffer. Drawing into ordinary memory rather than into the device's
//! mapping keeps write-combined (uncached) video memory out of embedded-graphics' pixel loop,
//! and a half-drawn screen is never visible.

use embedded_graphics::{pixelcolor::Rgb888, prelude::*};

/// The pixel layouts a canvas can hold (what framebuffers and DRM dumb buffers offer).
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum PixelFormat {
    /// 16 bits: 5 red, 6 green, 5 blue, little-endian.
    Rgb565,
    /// 32 bits: bytes B, G, R, unused (little-endian XRGB8888).
    Xrgb8888,
}

impl PixelFormat {
    /// Bytes per pixel.
    pub fn bytes(self) -> usize {
        match self {
            PixelFormat::Rgb565 => 2,
            PixelFormat::Xrgb8888 => 4,
        }
    }

    /// Bits per pixel.
    pub fn bits(self) -> u32 {
        self.bytes() as u32 * 8
    }

    /// Colour depth: the bits that carry colour (24 for XRGB8888, whose X byte is unused).
    pub fn depth(self) -> u32 {
        match self {
            PixelFormat::Rgb565 => 16,
            PixelFormat::Xrgb8888 => 24,
        }
    }

    /// Store `c` in `out` (exactly [`PixelFormat::bytes`] long).
    pub fn encode(self, c: Rgb888, out: &mut [u8]) {
        match self {
            PixelFormat::Rgb565 => {
                let v =
                    ((c.r() as u16 >> 3) << 11) | ((c.g() as u16 >> 2) << 5) | (c.b() as u16 >> 3);
                out.copy_from_slice(&v.to_le_bytes());
            }
            PixelFormat::Xrgb8888 => out.copy_from_slice(&[c.b(), c.g(), c.r(), 0]),
        }
    }
}

/// Size and pixel layout of a screen's memory.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Geometry {
    /// Visible width in pixels.
    pub width: u32,
    /// Visible height in pixels.
    pub height: u32,
    /// Bytes from one line to the next (the driver's pitch; may be more than width x bytes
    /// per pixel).
    pub stride: usize,
    /// How each pixel is stored.
    pub format: PixelFormat,
}

impl Geometry {
    /// Bytes of the whole screen.
    pub fn len(&self) -> usize {
        self.stride * self.height as usize
    }

    /// A screen of no pixels (never a real device's).
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// A screen in memory, as an embedded-graphics draw target; [`Canvas::bytes`] is what goes to
/// the device. Padding at the end of each line stays zero.
pub struct Canvas {
    geometry: Geometry,
    buf: Vec<u8>,
}

impl Canvas {
    /// A black canvas of `geometry`.
    pub fn new(geometry: Geometry) -> Canvas {
        Canvas {
            geometry,
            buf: vec![0; geometry.len()],
        }
    }

    /// The canvas's size and pixel layout.
    pub fn geometry(&self) -> Geometry {
        self.geometry
    }

    /// The pixels, `stride` bytes a line.
    pub fn bytes(&self) -> &[u8] {
        &self.buf
    }
}

impl OriginDimensions for Canvas {
    fn size(&self) -> Size {
        Size::new(self.geometry.width, self.geometry.height)
    }
}

impl DrawTarget for Canvas {
    type Color = Rgb888;
    type Error = std::convert::Infallible;

    fn draw_iter<I: IntoIterator<Item = Pixel<Rgb888>>>(
        &mut self,
        pixels: I,
    ) -> Result<(), Self::Error> {
        let g = self.geometry;
        let bpp = g.format.bytes();
        for Pixel(p, c) in pixels {
            if p.x >= 0 && p.y >= 0 && (p.x as u32) < g.width && (p.y as u32) < g.height {
                let at = p.y as usize * g.stride + p.x as usize * bpp;
                g.format.encode(c, &mut self.buf[at..at + bpp]);
            }
        }
        Ok(())
    }
}
