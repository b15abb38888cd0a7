//! Linux framebuffer (`/dev/fb0`): HDMI and DSI screens, and SPI panels that have a kernel
//! driver. Screens are drawn into memory in the device's own pixel format ([`Canvas`]) and
//! written to the device in one go, so a half-drawn screen is never visible for long.
//!
//! The text console draws into the same framebuffer; while a [`Framebuffer`] is open the active
//! VT is in graphics mode ([`super::console`]) so its text and cursor stay off the screen, and
//! it is given back to text mode when the framebuffer is dropped. Without the right to do that
//! the framebuffer works all the same, with a warning. Where the board has DRM/KMS, the `drm`
//! display is the better choice: it also works while the console is in use, and does not tear.
//!
//! The geometry comes from sysfs (`/sys/class/graphics/fbN/`), which needs no ioctl and can be
//! faked in tests: `virtual_size` ("1920,1080"), `bits_per_pixel` and `stride` (bytes per line,
//! which may be more than width x bytes per pixel).

use std::fs::{File, OpenOptions};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use embedded_graphics::{pixelcolor::Rgb888, prelude::*};

use super::canvas::Canvas;
pub use super::canvas::{Geometry, PixelFormat};
use super::console::ConsoleGraphics;

impl Geometry {
    /// Read the geometry of `/dev/fbN` from `sysfs_dir` (normally `/sys/class/graphics/fbN`).
    pub fn from_sysfs(sysfs_dir: &Path) -> Result<Geometry> {
        let read = |name: &str| -> Result<String> {
            let p = sysfs_dir.join(name);
            Ok(std::fs::read_to_string(&p)
                .with_context(|| format!("cannot read {}", p.display()))?
                .trim()
                .to_string())
        };
        let size = read("virtual_size")?;
        let (w, h) = size
            .split_once(',')
            .and_then(|(w, h)| Some((w.parse::<u32>().ok()?, h.parse::<u32>().ok()?)))
            .with_context(|| format!("unexpected virtual_size '{size}'"))?;
        let bpp: u32 = read("bits_per_pixel")?.parse().context("bits_per_pixel")?;
        let format = match bpp {
            16 => PixelFormat::Rgb565,
            32 => PixelFormat::Xrgb8888,
            other => bail!("{other} bits per pixel: only RGB565 (16) and XRGB8888 (32) framebuffers are supported"),
        };
        let stride = match read("stride") {
            Ok(s) => s.parse().context("stride")?,
            Err(_) => w as usize * format.bytes(),
        };
        if w == 0 || h == 0 || stride < w as usize * format.bytes() {
            bail!("implausible framebuffer geometry {w}x{h}, stride {stride}");
        }
        Ok(Geometry {
            width: w,
            height: h,
            stride,
            format,
        })
    }
}

/// A framebuffer device as an embedded-graphics draw target. Call [`Framebuffer::flush`] to
/// show what was drawn.
pub struct Framebuffer {
    device: File,
    path: PathBuf,
    canvas: Canvas,
    /// The console kept in graphics mode while the framebuffer is open (when allowed).
    _console: Option<ConsoleGraphics>,
}

impl Framebuffer {
    /// Open `/dev/fbN`, with its geometry from `/sys/class/graphics/fbN`.
    pub fn open(device: &Path) -> Result<Framebuffer> {
        let name = device
            .file_name()
            .with_context(|| format!("{} is not a framebuffer device path", device.display()))?;
        let sysfs = Path::new("/sys/class/graphics").join(name);
        let geometry = Geometry::from_sysfs(&sysfs)?;
        let mut fb = Framebuffer::with_geometry(device, geometry)?;
        fb._console = ConsoleGraphics::try_enter();
        Ok(fb)
    }

    /// Open `device` (a real framebuffer, or any file in tests) with a known geometry; the
    /// console is left as it is.
    pub fn with_geometry(device: &Path, geometry: Geometry) -> Result<Framebuffer> {
        let file = OpenOptions::new()
            .write(true)
            .open(device)
            .with_context(|| {
                format!(
                    "cannot open framebuffer {} for writing (is the user in the video group?)",
                    device.display()
                )
            })?;
        Ok(Framebuffer {
            device: file,
            path: device.to_path_buf(),
            canvas: Canvas::new(geometry),
            _console: None,
        })
    }

    /// The framebuffer's size and pixel layout.
    pub fn geometry(&self) -> Geometry {
        self.canvas.geometry()
    }

    /// Write the drawn screen to the device.
    pub fn flush(&mut self) -> Result<()> {
        self.device
            .write_all_at(self.canvas.bytes(), 0)
            .with_context(|| format!("cannot write to framebuffer {}", self.path.display()))
    }
}

impl super::Display for Framebuffer {
    fn show(&mut self, screen: &crate::ui::Screen) -> Result<()> {
        // Drawing into the memory copy cannot fail; writing it to the device can.
        let _ = crate::ui::draw(screen, self);
        self.flush()
    }
}

impl OriginDimensions for Framebuffer {
    fn size(&self) -> Size {
        self.canvas.size()
    }
}

impl DrawTarget for Framebuffer {
    type Color = Rgb888;
    type Error = std::convert::Infallible;

    fn draw_iter<I: IntoIterator<Item = Pixel<Rgb888>>>(
        &mut self,
        pixels: I,
    ) -> Result<(), Self::Error> {
        self.canvas.draw_iter(pixels)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use embedded_graphics::primitives::{PrimitiveStyle, Rectangle};

    fn fake_sysfs(dir: &Path, size: &str, bpp: &str, stride: Option<&str>) {
        std::fs::create_dir_all(dir).unwrap();
        std::fs::write(dir.join("virtual_size"), format!("{size}\n")).unwrap();
        std::fs::write(dir.join("bits_per_pixel"), format!("{bpp}\n")).unwrap();
        if let Some(s) = stride {
            std::fs::write(dir.join("stride"), format!("{s}\n")).unwrap();
        }
    }

    #[test]
    fn geometry_from_sysfs_including_padded_lines() {
        let d = tempfile::tempdir().unwrap();
        fake_sysfs(d.path(), "800,480", "16", Some("1664"));
        let g = Geometry::from_sysfs(d.path()).unwrap();
        assert_eq!(
            g,
            Geometry {
                width: 800,
                height: 480,
                stride: 1664,
                format: PixelFormat::Rgb565
            }
        );
        fake_sysfs(d.path(), "800,480", "24", None);
        let e = Geometry::from_sysfs(d.path()).unwrap_err();
        assert!(format!("{e:#}").contains("24 bits per pixel"), "{e:#}");
    }

    fn draw_and_read(format: PixelFormat, stride: usize) -> Vec<u8> {
        let d = tempfile::tempdir().unwrap();
        let dev = d.path().join("fb0");
        std::fs::write(&dev, b"").unwrap();
        let g = Geometry {
            width: 4,
            height: 3,
            stride,
            format,
        };
        let mut fb = Framebuffer::with_geometry(&dev, g).unwrap();
        fb.clear(Rgb888::BLACK).unwrap();
        Pixel(Point::new(1, 0), Rgb888::new(255, 0, 0))
            .draw(&mut fb)
            .unwrap();
        Rectangle::new(Point::new(3, 2), Size::new(5, 5)) // clipped to one pixel
            .into_styled(PrimitiveStyle::with_fill(Rgb888::new(0, 0, 255)))
            .draw(&mut fb)
            .unwrap();
        fb.flush().unwrap();
        std::fs::read(&dev).unwrap()
    }

    #[test]
    fn rgb565_pixels_land_at_the_right_bytes() {
        let b = draw_and_read(PixelFormat::Rgb565, 10); // 8 bytes of pixels + 2 of padding
        assert_eq!(b.len(), 30);
        assert_eq!(&b[2..4], &0xF800u16.to_le_bytes(), "red at (1,0)");
        assert_eq!(
            &b[2 * 10 + 6..2 * 10 + 8],
            &0x001Fu16.to_le_bytes(),
            "blue at (3,2)"
        );
        assert!(b[8..10].iter().all(|&x| x == 0), "padding untouched");
    }

    #[test]
    fn xrgb8888_is_bgrx_in_memory() {
        let b = draw_and_read(PixelFormat::Xrgb8888, 16);
        assert_eq!(&b[4..8], &[0, 0, 255, 0], "red at (1,0)");
        assert_eq!(
            &b[2 * 16 + 12..2 * 16 + 16],
            &[255, 0, 0, 0],
            "blue at (3,2)"
        );
    }
}
