//! The DRM backend's choices, without a card: spec strings, cards, connectors, modes, CRTCs,
//! pixel formats and what the errors say.

use std::path::{Path, PathBuf};

use embedded_graphics::{pixelcolor::Rgb888, prelude::*};

use super::choose::*;
use crate::display::canvas::{Canvas, Geometry, PixelFormat};

fn mode(w: u32, h: u32, refresh: u32, preferred: bool) -> ModeInfo {
    ModeInfo {
        width: w,
        height: h,
        refresh,
        preferred,
        interlaced: false,
    }
}

#[test]
fn spec_strings() {
    let c = |card: Option<&str>, mode| DrmConfig {
        card: card.map(PathBuf::from),
        mode,
    };
    assert_eq!(DrmConfig::parse("drm").unwrap(), c(None, None));
    assert_eq!(
        DrmConfig::parse("drm:/dev/dri/card1").unwrap(),
        c(Some("/dev/dri/card1"), None)
    );
    assert_eq!(
        DrmConfig::parse("drm:/dev/dri/card0?mode=1280x720").unwrap(),
        c(Some("/dev/dri/card0"), Some((1280, 720)))
    );
    assert_eq!(
        DrmConfig::parse("drm:?mode=800x480").unwrap(),
        c(None, Some((800, 480)))
    );
    for bad in [
        "drm:/dev/dri/card0?mode=1280",
        "drm:?mode=0x480",
        "drm:?size=1x1",
        "drmx",
    ] {
        assert!(DrmConfig::parse(bad).is_err(), "{bad}");
    }
    let e = DrmConfig::parse("drm:?rotate=90").unwrap_err();
    assert!(format!("{e:#}").contains("mode=WIDTHxHEIGHT"), "{e:#}");
}

#[test]
fn cards_in_number_order_without_render_nodes() {
    let names = ["renderD128", "card10", "card2", "by-path", "card0"].map(String::from);
    assert_eq!(
        card_paths(Path::new("/dev/dri"), names),
        ["/dev/dri/card0", "/dev/dri/card2", "/dev/dri/card10"].map(PathBuf::from)
    );
}

#[test]
fn preferred_mode_unless_one_is_asked_for() {
    let modes = [
        mode(3840, 2160, 30, false),
        mode(1920, 1080, 60, true),
        mode(1280, 720, 50, false),
        mode(1280, 720, 60, false),
        ModeInfo {
            interlaced: true,
            ..mode(1920, 1080, 60, false)
        },
    ];
    assert_eq!(choose_mode(&modes, None, "HDMI-A-1").unwrap(), 1);
    assert_eq!(
        choose_mode(&modes, Some((1280, 720)), "HDMI-A-1").unwrap(),
        3
    );
    assert_eq!(
        choose_mode(&modes, Some((1920, 1080)), "HDMI-A-1").unwrap(),
        1
    );
    // Nothing preferred: the first, which the kernel lists as the best.
    assert_eq!(choose_mode(&modes[2..], None, "HDMI-A-1").unwrap(), 0);
}

#[test]
fn a_missing_mode_lists_those_on_offer() {
    let modes = [
        mode(1920, 1080, 60, true),
        mode(1280, 720, 60, false),
        mode(1280, 720, 60, false),
    ];
    let e = choose_mode(&modes, Some((800, 480)), "HDMI-A-1").unwrap_err();
    assert_eq!(
        format!("{e:#}"),
        "mode 800x480 is not offered by HDMI-A-1; it offers: 1920x1080@60 (preferred), 1280x720@60 (set mode= to one of these, or leave it out for the preferred mode)"
    );
    let e = choose_mode(&[], None, "DSI-1").unwrap_err();
    assert!(format!("{e:#}").contains("DSI-1 is connected but offers no modes"));
}

#[test]
fn the_connected_connector() {
    let conn = |name: &str, connected, modes| ConnectorInfo {
        name: name.into(),
        connected,
        modes,
    };
    let card = Path::new("/dev/dri/card1");
    let all = [
        conn("HDMI-A-1", false, 0),
        conn("HDMI-A-2", true, 0),
        conn("DSI-1", true, 3),
    ];
    assert_eq!(choose_connector(&all, card).unwrap(), 2);
    assert_eq!(choose_connector(&all[..2], card).unwrap(), 1);
    let e = choose_connector(&all[..1], card).unwrap_err();
    assert_eq!(
        format!("{e:#}"),
        "no screen is connected to /dev/dri/card1 (connectors: HDMI-A-1); plug in the screen and check its cable and power"
    );
    let e = choose_connector(&[], card).unwrap_err();
    assert!(
        format!("{e:#}").contains("card1 has no display outputs"),
        "{e:#}"
    );
}

#[test]
fn the_crtc_already_driving_the_connector_else_the_first_possible() {
    assert_eq!(choose_crtc(Some(7), &[vec![5, 7]]), Some(7));
    assert_eq!(choose_crtc(None, &[vec![], vec![9, 5]]), Some(9));
    // A current CRTC the encoders cannot drive (stale state) is not used.
    assert_eq!(choose_crtc(Some(3), &[vec![5]]), Some(5));
    assert_eq!(choose_crtc::<u32>(None, &[]), None);
}

#[test]
fn xrgb8888_else_rgb565() {
    let argb = u32::from_le_bytes(*b"AR24");
    assert_eq!(choose_format(None).unwrap(), PixelFormat::Xrgb8888);
    assert_eq!(
        choose_format(Some(&[FOURCC_RGB565, FOURCC_XRGB8888])).unwrap(),
        PixelFormat::Xrgb8888
    );
    assert_eq!(
        choose_format(Some(&[argb, FOURCC_RGB565])).unwrap(),
        PixelFormat::Rgb565
    );
    let e = choose_format(Some(&[argb])).unwrap_err();
    assert!(format!("{e:#}").contains("it takes AR24"), "{e:#}");
    // The codes are the kernel's.
    assert_eq!(FOURCC_XRGB8888, ::drm::buffer::DrmFourcc::Xrgb8888 as u32);
    assert_eq!(FOURCC_RGB565, ::drm::buffer::DrmFourcc::Rgb565 as u32);
    assert_eq!(fourcc_of(PixelFormat::Rgb565), FOURCC_RGB565);
}

#[test]
fn a_busy_screen_names_both_ways_out() {
    let m = busy_message(Path::new("/dev/dri/card0"), "Permission denied");
    for want in [
        "/dev/dri/card0 is in use by another program",
        "desktop",
        "display = \"window\"",
        "sudo systemctl set-default multi-user.target",
        "sudo raspi-config nonint do_boot_behaviour B1",
    ] {
        assert!(m.contains(want), "{want} missing from: {m}");
    }
    assert!(is_busy(&std::io::Error::from_raw_os_error(libc::EACCES)));
    assert!(is_busy(&std::io::Error::from_raw_os_error(libc::EPERM)));
    assert!(!is_busy(&std::io::Error::from_raw_os_error(libc::EINVAL)));
    let denied = std::io::Error::from_raw_os_error(libc::EACCES);
    let o = open_error(Path::new("/dev/dri/card0"), &denied);
    assert!(o.contains("video group") && o.contains("char-drm"), "{o}");
}

/// A dumb buffer's pitch is the driver's choice (vc4 and nvidia-drm round lines up): pixels
/// land at y * pitch + x * bytes, and the padding stays zero.
#[test]
fn pixels_packed_with_the_drivers_pitch() {
    for (format, pitch, want) in [
        (PixelFormat::Xrgb8888, 64, vec![0x56, 0x34, 0x12, 0]),
        (PixelFormat::Rgb565, 32, 0x11AAu16.to_le_bytes().to_vec()),
    ] {
        let g = Geometry {
            width: 5,
            height: 3,
            stride: pitch,
            format,
        };
        let mut c = Canvas::new(g);
        c.clear(Rgb888::new(255, 255, 255)).unwrap();
        Pixel(Point::new(4, 2), Rgb888::new(0x12, 0x34, 0x56))
            .draw(&mut c)
            .unwrap();
        let b = c.bytes();
        assert_eq!(b.len(), pitch * 3);
        let at = 2 * pitch + 4 * format.bytes();
        assert_eq!(&b[at..at + format.bytes()], &want[..], "{format:?}");
        let row_end = 5 * format.bytes();
        assert!(
            b[row_end..pitch].iter().all(|&x| x == 0),
            "padding of {format:?}"
        );
    }
}
