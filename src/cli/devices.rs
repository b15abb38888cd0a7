//! `cxr-edge devices`: the cameras this machine has, what they offer (formats, sizes and
//! controls), and the stable name to put in the config.

use anyhow::Result;

#[cfg(feature = "camera")]
pub fn run() -> Result<i32> {
    use crate::capture::camera::{FormatInfo, FrameSizes};
    use crate::capture::pixfmt::{fourcc_str, PixelFormat};
    use crate::capture::v4l2::list_devices;

    use super::EXIT_OK;

    fn sizes(f: &FormatInfo) -> String {
        if f.sizes.is_empty() {
            return "(sizes not listed)".into();
        }
        f.sizes
            .iter()
            .map(|s| match s {
                FrameSizes::Discrete(w, h) => format!("{w}x{h}"),
                FrameSizes::Stepwise { min, max, step } => format!(
                    "{}x{} to {}x{} (step {}x{})",
                    min.0, min.1, max.0, max.1, step.0, step.1
                ),
            })
            .collect::<Vec<_>>()
            .join(", ")
    }

    let devices = list_devices();
    if devices.is_empty() {
        println!(
            "No cameras found: this machine has no video capture device (/dev/video*).\n\
             Plug in a USB (UVC) camera and run `cxr-edge devices` again. A Raspberry Pi CSI \
             camera needs libcamera's V4L2 compatibility layer (see board/rpi4/README.md).\n\
             Without a camera, `cxr-edge capture --frames DIR` plays image files as one."
        );
        return Ok(EXIT_OK);
    }
    for d in &devices {
        match d {
            Err((path, why)) => println!("{}: cannot open: {why}\n", path.display()),
            Ok(d) => {
                println!("{}  {} ({}, {})", d.path.display(), d.card, d.driver, d.bus);
                for n in &d.stable_names {
                    println!("  stable name: {}", n.display());
                }
                for f in &d.formats {
                    let note = if PixelFormat::from_fourcc(f.fourcc).is_some() {
                        ""
                    } else {
                        "  [not readable by cxr-edge]"
                    };
                    println!(
                        "  {:<4}  {:<22} {}{note}",
                        fourcc_str(f.fourcc),
                        f.description,
                        sizes(f)
                    );
                }
                if d.formats.is_empty() {
                    println!("  (no formats listed)");
                }
                // The ranges are what `exposure` and `focus` numbers in the config must be in.
                if d.controls.is_empty() {
                    println!("  (no controls listed)");
                } else {
                    println!("  controls:");
                }
                for c in &d.controls {
                    println!("    {}", c.summary());
                }
                println!();
            }
        }
    }
    println!("Use one with `cxr-edge capture --camera DEVICE` or `source = \"camera:DEVICE\"` in the config; the stable name survives replugging.");
    println!("`mains_hz`, `exposure` and `focus` in the config set the controls marked for them.");
    Ok(EXIT_OK)
}

#[cfg(not(feature = "camera"))]
pub fn run() -> Result<i32> {
    anyhow::bail!("this build has no camera support (built without the `camera` feature)")
}
