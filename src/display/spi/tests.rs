//! The SPI panel driver against a fake SPI device that records every write with the level of
//! the DC line at that moment, fake output lines and a delay that does not sleep.

use super::*;
use std::fmt;
use std::path::PathBuf;

use embedded_hal::{delay::DelayNs, spi::SpiDevice};
use mipidsi::interface::Interface;
use std::sync::{Arc, Mutex};

use embedded_hal::spi::{ErrorType, Operation};

#[derive(Clone, Debug, PartialEq)]
enum Ev {
    Write { dc: bool, bytes: Vec<u8> },
    Pin { name: &'static str, high: bool },
}

#[derive(Default)]
struct State {
    dc: bool,
    events: Vec<Ev>,
    writes: usize,
    /// Fail the write with this index (0 = the first write).
    fail_write: Option<usize>,
    fail_dc: bool,
}

type Shared = Arc<Mutex<State>>;

#[derive(Debug)]
struct FakeError(&'static str);

impl fmt::Display for FakeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.0)
    }
}

impl embedded_hal::spi::Error for FakeError {
    fn kind(&self) -> embedded_hal::spi::ErrorKind {
        embedded_hal::spi::ErrorKind::Other
    }
}

impl embedded_hal::digital::Error for FakeError {
    fn kind(&self) -> embedded_hal::digital::ErrorKind {
        embedded_hal::digital::ErrorKind::Other
    }
}

struct FakeSpi(Shared);

impl ErrorType for FakeSpi {
    type Error = FakeError;
}

impl SpiDevice for FakeSpi {
    fn transaction(&mut self, ops: &mut [Operation<'_, u8>]) -> Result<(), FakeError> {
        let mut s = self.0.lock().unwrap();
        for op in ops {
            match op {
                Operation::Write(bytes) => {
                    if s.fail_write == Some(s.writes) {
                        return Err(FakeError("EIO from the fake spidev"));
                    }
                    s.writes += 1;
                    let dc = s.dc;
                    s.events.push(Ev::Write {
                        dc,
                        bytes: bytes.to_vec(),
                    });
                }
                _ => panic!("the panel driver only writes"),
            }
        }
        Ok(())
    }
}

struct FakePin {
    name: &'static str,
    state: Shared,
}

impl embedded_hal::digital::ErrorType for FakePin {
    type Error = FakeError;
}

impl FakePin {
    fn set(&mut self, high: bool) -> Result<(), FakeError> {
        let mut s = self.state.lock().unwrap();
        if self.name == "dc" {
            if s.fail_dc {
                return Err(FakeError("DC line gone"));
            }
            s.dc = high;
        }
        s.events.push(Ev::Pin {
            name: self.name,
            high,
        });
        Ok(())
    }
}

impl OutputPin for FakePin {
    fn set_low(&mut self) -> Result<(), FakeError> {
        self.set(false)
    }

    fn set_high(&mut self) -> Result<(), FakeError> {
        self.set(true)
    }
}

#[derive(Default)]
struct FakeDelay {
    ns: u64,
}

impl DelayNs for FakeDelay {
    fn delay_ns(&mut self, ns: u32) {
        self.ns += u64::from(ns);
    }
}

type FakeDriver = Driver<FakeSpi, FakePin, FakePin>;

fn open(cfg: &SpiConfig, with_reset: bool, chunk: usize) -> (Result<FakeDriver>, Shared, u64) {
    open_with(cfg, with_reset, chunk, State::default())
}

fn open_with(
    cfg: &SpiConfig,
    with_reset: bool,
    chunk: usize,
    state: State,
) -> (Result<FakeDriver>, Shared, u64) {
    let shared: Shared = Arc::new(Mutex::new(state));
    let pin = |name| FakePin {
        name,
        state: shared.clone(),
    };
    let mut delay = FakeDelay::default();
    let d = Driver::init(
        cfg,
        FakeSpi(shared.clone()),
        pin("dc"),
        with_reset.then(|| pin("reset")),
        chunk,
        &mut delay,
    );
    (d, shared, delay.ns)
}

fn take_events(s: &Shared) -> Vec<Ev> {
    std::mem::take(&mut s.lock().unwrap().events)
}

/// Commands with their data: a command is one byte written with DC low, its data every
/// byte written with DC high until the next command.
fn commands(events: &[Ev]) -> Vec<(u8, Vec<u8>)> {
    let mut out: Vec<(u8, Vec<u8>)> = Vec::new();
    for e in events {
        if let Ev::Write { dc, bytes } = e {
            if *dc {
                out.last_mut()
                    .expect("data before any command")
                    .1
                    .extend_from_slice(bytes);
            } else {
                assert_eq!(bytes.len(), 1, "a command write (DC low) is one byte");
                out.push((bytes[0], Vec::new()));
            }
        }
    }
    out
}

fn writes(events: &[Ev]) -> Vec<&Vec<u8>> {
    events
        .iter()
        .filter_map(|e| match e {
            Ev::Write { bytes, .. } => Some(bytes),
            _ => None,
        })
        .collect()
}

fn position(cmds: &[(u8, Vec<u8>)], c: u8) -> usize {
    cmds.iter()
        .position(|(x, _)| *x == c)
        .unwrap_or_else(|| panic!("command 0x{c:02X} not sent: {cmds:02X?}"))
}

fn data(cmds: &[(u8, Vec<u8>)], c: u8) -> &[u8] {
    &cmds[position(cmds, c)].1
}

/// Start and end as CASET/RASET send them: two big-endian u16.
fn window(start: u16, end: u16) -> Vec<u8> {
    [start.to_be_bytes(), end.to_be_bytes()].concat()
}

fn cfg(spec: &str) -> SpiConfig {
    SpiConfig::parse(spec).unwrap()
}

/// Black, with red at the top left, green at the top right, blue at the bottom left and
/// white in the middle.
fn pattern(w: u32, h: u32) -> image::RgbImage {
    let mut img = image::RgbImage::new(w, h);
    img.put_pixel(0, 0, image::Rgb([255, 0, 0]));
    img.put_pixel(w - 1, 0, image::Rgb([0, 255, 0]));
    img.put_pixel(0, h - 1, image::Rgb([0, 0, 255]));
    img.put_pixel(w / 2, h / 2, image::Rgb([255, 255, 255]));
    img
}

/// Show the pattern; check the window, the memory write and every pixel.
fn check_frame(d: &mut FakeDriver, s: &Shared, chunk: usize, caset: (u16, u16), raset: (u16, u16)) {
    let (w, h) = d.size();
    take_events(s);
    d.show(&pattern(w, h)).unwrap();
    let events = take_events(s);
    for b in writes(&events) {
        assert!(
            b.len() <= chunk,
            "a write of {} bytes > chunk {chunk}",
            b.len()
        );
    }
    let cmds = commands(&events);
    let names: Vec<u8> = cmds.iter().map(|(c, _)| *c).collect();
    assert_eq!(names, [0x2A, 0x2B, 0x2C], "a frame is CASET, RASET, RAMWR");
    assert_eq!(cmds[0].1, window(caset.0, caset.1), "CASET");
    assert_eq!(cmds[1].1, window(raset.0, raset.1), "RASET");
    let px = &cmds[2].1;
    assert_eq!(
        px.len(),
        (w * h * 2) as usize,
        "RAMWR is followed by exactly w*h*2 bytes"
    );
    let at = |x: u32, y: u32| {
        let i = ((y * w + x) * 2) as usize;
        [px[i], px[i + 1]]
    };
    assert_eq!(at(0, 0), [0xF8, 0x00], "red, RGB565 big-endian");
    assert_eq!(at(w - 1, 0), [0x07, 0xE0], "green");
    assert_eq!(at(0, h - 1), [0x00, 0x1F], "blue");
    assert_eq!(at(w / 2, h / 2), [0xFF, 0xFF], "white");
    let lit = px.chunks(2).filter(|p| *p != [0, 0]).count();
    assert_eq!(lit, 4, "everything else black");
    // DC: low only around the three command bytes, high for all data.
    for e in &events {
        if let Ev::Write { dc, bytes } = e {
            assert_eq!(
                !*dc,
                bytes.len() == 1 && [0x2A, 0x2B, 0x2C].contains(&bytes[0])
            );
        }
    }
}

#[test]
fn st7789_init_without_reset_line_starts_with_a_software_reset() {
    let c = cfg("spi:st7789:/dev/spidev0.0?dc=25");
    let (d, s, delay) = open(&c, false, 4096);
    d.unwrap();
    let events = take_events(&s);
    let cmds = commands(&events);
    assert_eq!(cmds[0], (0x01, vec![]), "SWRESET first: {cmds:02X?}");
    let (slpout, colmod, dispon) = (
        position(&cmds, 0x11),
        position(&cmds, 0x3A),
        position(&cmds, 0x29),
    );
    assert!(slpout < colmod && colmod < dispon, "{cmds:02X?}");
    assert_eq!(data(&cmds, 0x3A), [0x55], "COLMOD 16 bits per pixel");
    assert_eq!(data(&cmds, 0x36), [0x00], "MADCTL: 0 degrees, RGB");
    position(&cmds, 0x21); // INVON: IPS ST7789 panels are inverted
    assert!(!cmds.iter().any(|(c, _)| *c == 0x20));
    assert!(!events
        .iter()
        .any(|e| matches!(e, Ev::Pin { name: "reset", .. })));
    assert!(
        delay >= 120_000_000,
        "waits after reset and sleep out ({delay} ns)"
    );
    // Every command byte with DC low, every argument with DC high.
    for e in &events {
        if let Ev::Write { dc: false, bytes } = e {
            assert_eq!(bytes.len(), 1);
        }
    }
}

#[test]
fn st7789_init_with_reset_line_pulses_it_before_any_command() {
    let c = cfg("spi:st7789:/dev/spidev0.0?dc=24&reset=25&invert=0&bgr=1");
    let (d, s, _) = open(&c, true, 4096);
    d.unwrap();
    let events = take_events(&s);
    let resets: Vec<&Ev> = events
        .iter()
        .filter(|e| matches!(e, Ev::Pin { name: "reset", .. }))
        .collect();
    assert_eq!(
        resets,
        [
            &Ev::Pin {
                name: "reset",
                high: false
            },
            &Ev::Pin {
                name: "reset",
                high: true
            }
        ]
    );
    let first_write = events
        .iter()
        .position(|e| matches!(e, Ev::Write { .. }))
        .unwrap();
    let reset_high = events
        .iter()
        .position(|e| {
            *e == Ev::Pin {
                name: "reset",
                high: true,
            }
        })
        .unwrap();
    assert!(reset_high < first_write);
    let cmds = commands(&events);
    assert!(
        !cmds.iter().any(|(c, _)| *c == 0x01),
        "no SWRESET after a hardware reset"
    );
    position(&cmds, 0x11);
    assert_eq!(data(&cmds, 0x3A), [0x55]);
    position(&cmds, 0x29);
    position(&cmds, 0x20); // INVOFF
    assert_eq!(data(&cmds, 0x36), [0x08], "MADCTL BGR bit");
}

#[test]
fn ili9341_init_sequence() {
    let c = cfg("spi:ili9341:/dev/spidev0.0?dc=24&reset=25");
    let (d, s, _) = open(&c, true, 4096);
    d.unwrap();
    let cmds = commands(&take_events(&s));
    let (colmod, slpout, dispon) = (
        position(&cmds, 0x3A),
        position(&cmds, 0x11),
        position(&cmds, 0x29),
    );
    assert!(colmod < dispon && slpout < dispon, "{cmds:02X?}");
    assert_eq!(data(&cmds, 0x3A), [0x55]);
    position(&cmds, 0x20); // INVOFF: TN panel
                           // Landscape 320x240 by default: rotate=90 with the module's mirrored columns gives
                           // MV | BGR, the Adafruit/fbtft landscape setting.
    assert_eq!(data(&cmds, 0x36), [0x28]);

    let (d, s, _) = open(&c, false, 4096);
    d.unwrap();
    assert_eq!(
        commands(&take_events(&s))[0].0,
        0x01,
        "SWRESET without a reset line"
    );
}

#[test]
fn st7789_240x240_frame() {
    let c = cfg("spi:st7789:/dev/spidev0.0?dc=25");
    let (d, s, _) = open(&c, false, 4096);
    check_frame(&mut d.unwrap(), &s, 4096, (0, 239), (0, 239));
}

#[test]
fn st7789_240x240_rotated_needs_the_memory_offset() {
    // The 240x240 glass covers rows 0-239 of the 240x320 memory; turned by 180 degrees the
    // visible rows are addressed as 80-319, turned by 270 the columns are.
    let c = cfg("spi:st7789:/dev/spidev0.0?dc=25&rotate=180");
    let (d, s, _) = open(&c, false, 4096);
    let mut d = d.unwrap();
    assert_eq!(data(&commands(&take_events(&s)), 0x36), [0xC0], "MY|MX");
    check_frame(&mut d, &s, 4096, (0, 239), (80, 319));

    let c = cfg("spi:st7789:/dev/spidev0.0?dc=25&rotate=270");
    let (d, s, _) = open(&c, false, 4096);
    check_frame(&mut d.unwrap(), &s, 4096, (80, 319), (0, 239));

    let c = cfg("spi:st7789:/dev/spidev0.0?dc=25&rotate=90");
    let (d, s, _) = open(&c, false, 4096);
    check_frame(&mut d.unwrap(), &s, 4096, (0, 239), (0, 239));
}

#[test]
fn st7789_135x240_is_centred_in_the_memory() {
    let c = cfg("spi:st7789:/dev/spidev0.0?dc=25&size=135x240");
    assert_eq!(c.offset_or_default(), (52, 40));
    let (d, s, _) = open(&c, false, 4096);
    check_frame(&mut d.unwrap(), &s, 4096, (52, 186), (40, 279));
    // An explicit offset wins.
    let c = cfg("spi:st7789:/dev/spidev0.0?dc=25&size=240x280&offset=0,20&rotate=180");
    let (d, s, _) = open(&c, false, 4096);
    check_frame(&mut d.unwrap(), &s, 4096, (0, 239), (20, 299));
}

#[test]
fn ili9341_320x240_frame() {
    let c = cfg("spi:ili9341:/dev/spidev0.0?dc=24&reset=25");
    let (d, s, _) = open(&c, true, 4096);
    let mut d = d.unwrap();
    assert_eq!(d.size(), (320, 240));
    check_frame(&mut d, &s, 4096, (0, 319), (0, 239));

    let c = cfg("spi:ili9341:/dev/spidev0.0?dc=24&size=240x320");
    let (d, s, _) = open(&c, true, 4096);
    check_frame(&mut d.unwrap(), &s, 4096, (0, 239), (0, 319));
}

#[test]
fn every_write_fits_the_chunk() {
    for spec in [
        "spi:st7789:/dev/spidev0.0?dc=25",
        "spi:ili9341:/dev/spidev0.0?dc=24",
    ] {
        for chunk in [64, 1000, 4096, 65536] {
            let c = cfg(spec);
            let (d, s, _) = open(&c, false, chunk);
            let mut d = d.unwrap();
            for b in writes(&take_events(&s)) {
                assert!(b.len() <= chunk);
            }
            // check_frame asserts every write <= chunk and the byte count.
            let (w, h) = d.size();
            check_frame(&mut d, &s, chunk, (0, w as u16 - 1), (0, h as u16 - 1));
        }
    }
}

#[test]
fn large_writes_are_split() {
    let shared: Shared = Arc::default();
    let mut bus = Bus::new(
        FakeSpi(shared.clone()),
        FakePin {
            name: "dc",
            state: shared.clone(),
        },
        100,
    );
    let args: Vec<u8> = (0..=255).collect();
    bus.send_command(0x42, &args).unwrap();
    bus.send_repeated_pixel([1, 2], 1000).unwrap();
    let events = take_events(&shared);
    let sizes: Vec<usize> = writes(&events).iter().map(|b| b.len()).collect();
    assert!(sizes.iter().all(|&n| n <= 100), "{sizes:?}");
    let cmds = commands(&events);
    assert_eq!(cmds.len(), 1);
    assert_eq!(cmds[0].1[..256], args[..], "the arguments, then the pixels");
    assert!(cmds[0].1[256..].chunks(2).all(|p| p == [1, 2]));
    assert_eq!(sizes.iter().sum::<usize>(), 1 + 256 + 2000);
}

#[test]
fn chunk_follows_spidev_bufsiz() {
    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join("bufsiz");
    assert_eq!(
        effective_chunk(4096, &f),
        4096,
        "no sysfs file: as configured"
    );
    std::fs::write(&f, "1024\n").unwrap();
    assert_eq!(effective_chunk(4096, &f), 1024);
    std::fs::write(&f, "65536\n").unwrap();
    assert_eq!(effective_chunk(4096, &f), 4096);
    assert_eq!(effective_chunk(65536, &f), 65536);
    std::fs::write(&f, "4095").unwrap();
    assert_eq!(effective_chunk(8192, &f), 4094, "whole pixels");
    std::fs::write(&f, "garbage").unwrap();
    assert_eq!(effective_chunk(4096, &f), 4096);
}

#[test]
fn an_image_of_the_wrong_size_is_refused() {
    let c = cfg("spi:st7789:/dev/spidev0.0?dc=25");
    let (d, s, _) = open(&c, false, 4096);
    let mut d = d.unwrap();
    take_events(&s);
    let e = d.show(&image::RgbImage::new(320, 240)).unwrap_err();
    assert!(e.to_string().contains("320x240"), "{e}");
    assert!(e.to_string().contains("240x240"), "{e}");
    assert!(take_events(&s).is_empty(), "nothing written");
    d.show(&image::RgbImage::new(240, 240)).unwrap();
}

#[test]
fn spi_errors_propagate() {
    let c = cfg("spi:ili9341:/dev/spidev0.0?dc=24");
    for n in [0, 3, 10] {
        let (d, _, _) = open_with(
            &c,
            false,
            4096,
            State {
                fail_write: Some(n),
                ..State::default()
            },
        );
        let e = format!("{:#}", d.err().expect("init fails"));
        assert!(e.contains("EIO from the fake spidev"), "{e}");
    }
    let (d, s, _) = open(&c, false, 4096);
    let mut d = d.unwrap();
    let done = s.lock().unwrap().writes;
    // Fail in the middle of the pixel data.
    s.lock().unwrap().fail_write = Some(done + 10);
    let e = format!("{:#}", d.show(&pattern(320, 240)).unwrap_err());
    assert!(e.contains("EIO from the fake spidev"), "{e}");
    // DC line errors too.
    s.lock().unwrap().fail_write = None;
    s.lock().unwrap().fail_dc = true;
    let e = format!("{:#}", d.show(&pattern(320, 240)).unwrap_err());
    assert!(e.contains("DC line gone"), "{e}");
}

#[test]
fn parse_full_spec() {
    let c = cfg("spi:st7789:/dev/spidev0.0?dc=24&reset=25&bl=18&size=240x240&rotate=0&invert=1&chip=/dev/gpiochip0&hz=40000000");
    assert_eq!(
        c,
        SpiConfig {
            controller: Controller::St7789,
            spidev: "/dev/spidev0.0".into(),
            gpiochip: "/dev/gpiochip0".into(),
            gpio_controller: None,
            dc: LineRef::Offset(24),
            reset: Some(LineRef::Offset(25)),
            backlight: Some(LineRef::Offset(18)),
            width: 240,
            height: 240,
            rotation_deg: 0,
            invert_colors: true,
            bgr: false,
            hz: 40_000_000,
            chunk: 4096,
            mirror: false,
            offset: None,
            spi_mode: 0,
        }
    );
    let c = cfg("st7789:spidev1.0?dc=5&chip=gpiochip4&hz=62.5M"
        .replace("62.5M", "62M")
        .as_str());
    assert_eq!(c.spidev, PathBuf::from("/dev/spidev1.0"));
    assert_eq!(c.gpiochip, PathBuf::from("/dev/gpiochip4"));
    assert_eq!(c.hz, 62_000_000);
    let c = cfg("spi:ST7789:?dc=5&rst=none&backlight=12&mode=3&chunk=8192&mirror=yes&offset=52x40&size=135x240");
    assert_eq!(c.spidev, PathBuf::from("/dev/spidev0.0"));
    assert_eq!(
        (c.reset, c.backlight, c.spi_mode, c.chunk),
        (None, Some(LineRef::Offset(12)), 3, 8192)
    );
    assert_eq!((c.mirror, c.offset), (true, Some((52, 40))));
    let c = cfg("spi:st7789:/dev/spidev0.0?dc=GPIO24&reset=GPIO25&bl=PH.00&gpio=pinctrl-rp1");
    let name = |s: &str| Some(LineRef::Name(s.to_string()));
    assert_eq!(
        (Some(c.dc.clone()), c.reset.clone(), c.backlight.clone()),
        (name("GPIO24"), name("GPIO25"), name("PH.00"))
    );
    assert_eq!(c.expected_gpio_controller(), Some("pinctrl-rp1"));
    let c = cfg("spi:st7789:/dev/spidev0.0?dc=24&gpio=none");
    assert_eq!(
        (c.gpio_controller.as_deref(), c.expected_gpio_controller()),
        (Some("none"), None)
    );
}

#[test]
fn parse_defaults_per_controller() {
    let s = cfg("spi:st7789:/dev/spidev0.0?dc=25");
    assert_eq!(s.expected_gpio_controller(), None);
    assert_eq!((s.width, s.height, s.rotation_deg), (240, 240, 0));
    assert!(s.invert_colors && !s.bgr && !s.mirror);
    assert_eq!(
        (s.chunk, s.hz, s.reset, s.backlight),
        (4096, 40_000_000, None, None)
    );
    assert_eq!(s.gpiochip, PathBuf::from("/dev/gpiochip0"));
    let i = cfg("spi:ili9341:/dev/spidev0.1?dc=24");
    assert_eq!((i.width, i.height, i.rotation_deg), (320, 240, 90));
    assert!(!i.invert_colors && i.bgr && i.mirror);
    let p = cfg("spi:ili9341:/dev/spidev0.1?dc=24&size=240x320");
    assert_eq!(p.rotation_deg, 0, "portrait fits unrotated");
    let l = cfg("spi:ili9341:/dev/spidev0.1?dc=24&rotate=270");
    assert_eq!((l.width, l.height, l.rotation_deg), (320, 240, 270));
}

#[test]
fn parse_errors_name_the_problem() {
    let err = |spec: &str| format!("{:#}", SpiConfig::parse(spec).unwrap_err());
    let e = err("spi:st7789:/dev/spidev0.0?dc=25&colour=1");
    assert!(e.contains("unknown key 'colour'"), "{e}");
    let e = err("spi:st7789:/dev/spidev0.0?dc=-25");
    assert!(e.contains("'-25'") && e.contains("'dc'"), "{e}");
    let e = err("spi:st7789:/dev/spidev0.0?dc=GPIO25&bl=GPIO25");
    assert!(e.contains("GPIO line GPIO25") && e.contains("bl"), "{e}");
    let e = err("spi:st7789:/dev/spidev0.0?reset=25");
    assert!(e.contains("missing dc="), "{e}");
    let e = err("spi:ssd1306:/dev/spidev0.0?dc=25");
    assert!(e.contains("unknown controller 'ssd1306'"), "{e}");
    let e = err("spi:st7789:/dev/spidev0.0?dc=25&dc=24");
    assert!(e.contains("'dc' given twice"), "{e}");
    let e = err("spi:st7789:/dev/spidev0.0?dc=25&rotate=45");
    assert!(e.contains("'rotate'"), "{e}");
    let e = err("spi:st7789:/dev/spidev0.0?dc=25&size=240");
    assert!(e.contains("'size'"), "{e}");
    let e = err("spi:ili9341:/dev/spidev0.0?dc=25&rotate=0");
    assert!(e.contains("rotate=90"), "landscape hint: {e}");
    let e = err("spi:ili9341:/dev/spidev0.0?dc=25&size=480x320");
    assert!(e.contains("does not fit"), "{e}");
    let e = err("spi:st7789:/dev/spidev0.0?dc=25&reset=25");
    assert!(e.contains("GPIO line 25") && e.contains("reset"), "{e}");
    let e = err("spi:st7789:/dev/spidev0.0?dc=25&size=135x240&offset=200,0");
    assert!(e.contains("offset"), "{e}");
    let e = err("spi:st7789:/dev/spidev0.0?dc=25&invert=maybe");
    assert!(e.contains("'invert'"), "{e}");
    let e = err("spi:st7789:/dev/spidev0.0?dc=25&hz=fast");
    assert!(e.contains("'hz'"), "{e}");
    let e = err("spi:st7789:/dev/spidev0.0?dc=25&chunk=8");
    assert!(e.contains("'chunk'"), "{e}");
    let e = err("spi:st7789:/dev/spidev0.0?dc=25&mode=4");
    assert!(e.contains("'mode'"), "{e}");
    let e = err("spi:st7789:/dev/spidev0.0?dc");
    assert!(e.contains("not key=value"), "{e}");
}

#[test]
fn open_without_devices_says_which() {
    let mut c = cfg("spi:st7789:/dev/spidev0.0?dc=25");
    c.spidev = PathBuf::from("/nonexistent/spidev9.9");
    let e = format!("{:#}", SpiPanel::open(&c).err().unwrap());
    assert!(e.contains("/nonexistent/spidev9.9"), "{e}");
}

#[test]
fn spi_panel_is_send() {
    fn send<T: Send>() {}
    send::<SpiPanel>();
}
