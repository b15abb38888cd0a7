"""photosim2: a second, evaluation-only simulator of camera/phone photos of a chest film.

Written without looking at the device's own simulator (src/film/simulate.rs) or the training
augmentations, so that photo-path figures measured on it are not measured on the same world
model the network was trained on. NEVER use it for training or for choosing anything (model,
thresholds, finder settings): then it stops being an independent yardstick. See README.md.

World model, in order of the light's path:
  room (wall or desk, dim or bright ambient light, posters/objects) -> light box (panel size,
  colour temperature, LED grid / fluorescent tube / edge-lit non-uniformity, bezel) or a
  phone/tablet/monitor screen showing the film (sub-pixel grid -> moire) -> film (transmission
  from the image, density range, base fog, optional clear border, scratches and dust, rarely a
  negative copy) -> occluders (clips on the top edge, a hand and fingers) -> glossy reflections
  -> camera pose (distance, keystone tilt, sometimes beyond 25 degrees, roll) -> lens (radial
  distortion, vignetting, defocus, veiling glare) -> motion blur -> sensor (auto exposure, mains
  flicker banding, Poisson-Gaussian noise, Bayer mosaic and demosaic, clipping) -> image
  processing (white balance, local tone mapping, tone curve, denoise, sharpening) -> JPEG 4:2:0,
  sometimes re-sent through a messenger (downscaled, recompressed).

Every photo is a pure function of (image, seed, index): rng = numpy.random.default_rng([seed,
index]). Plane coordinates are millimetres on the light box plane, u to the right, v down.
"""
from __future__ import annotations

import io
import math

import numpy as np
from PIL import Image
from scipy import ndimage
from scipy.signal import fftconvolve

# Camera frames as sent to the device: a 720p webcam or a phone photo, downscaled to ~1 MP (the
# finder works on a ~160 px copy, so more pixels only cost render time).
FRAMES = [((1280, 720), 0.5), ((720, 1280), 0.3), ((1280, 960), 0.1), ((960, 1280), 0.1)]


def _u(rng, a, b):
    return float(rng.uniform(a, b))


def _pick(rng, items, probs):
    return items[int(rng.choice(len(items), p=np.asarray(probs) / np.sum(probs)))]


def cct_rgb(kelvin):
    """Linear RGB of a white light of colour temperature `kelvin` (Helland's fit), G = 1."""
    t = kelvin / 100.0
    r = 255.0 if t <= 66 else 329.698727446 * (t - 60) ** -0.1332047592
    g = 99.4708025861 * math.log(t) - 161.1195681661 if t <= 66 else 288.1221695283 * (t - 60) ** -0.0755148492
    b = 255.0 if t >= 66 else (0.0 if t <= 19 else 138.5177312231 * math.log(t - 10) - 305.0447927307)
    c = np.clip(np.array([r, g, b]) / 255.0, 0.02, 1.0) ** 2.2
    return c / c[1]


# ---------------------------------------------------------------------------------------------
# Parameters: everything random is drawn here, so a photo's record says exactly what was made.
# ---------------------------------------------------------------------------------------------

def sample_params(rng, img_w, img_h):
    p = {}
    (W, H) = _pick(rng, [f[0] for f in FRAMES], [f[1] for f in FRAMES])
    p["frame"] = [W, H]
    p["camera"] = _pick(rng, ["webcam", "phone"], [0.4, 0.6]) if (W, H) == (1280, 720) else "phone"
    p["screen"] = bool(rng.random() < 0.12)  # a screen showing the film instead of a light box
    aspect = img_w / img_h
    if p["screen"]:
        kind = _pick(rng, ["phone", "tablet", "monitor"], [0.45, 0.25, 0.3])
        sw, sh = {"phone": (68.0, 148.0), "tablet": (150.0, 200.0), "monitor": (530.0, 300.0)}[kind]
        fill = _u(rng, 0.8, 1.0)  # viewer margin around the displayed image
        fw = min(sw * fill, sh * fill * aspect)
        p.update(screen_kind=kind, panel=[sw, sh], film=[fw, fw / aspect], film_rot=0.0,
                 film_center=[_u(rng, -1, 1) * (sw - fw) * 0.4, _u(rng, -1, 1) * (sh - fw / aspect) * 0.4],
                 bezel=_u(rng, 3, 6) if kind == "phone" else _u(rng, 8, 25),
                 bezel_albedo=[_u(rng, 0.02, 0.06)] * 3,
                 screen_bg=_pick(rng, [0.0, 0.15, 0.9], [0.6, 0.15, 0.25]),
                 black_level=_u(rng, 0.001, 0.01),
                 pixel_pitch={"phone": _u(rng, 0.045, 0.065), "tablet": _u(rng, 0.08, 0.1),
                              "monitor": _u(rng, 0.23, 0.3)}[kind],
                 moire_amp=_u(rng, 0.1, 0.45), clips=[], tubes=None,
                 panel_cct=_u(rng, 6000, 7500), uniformity="screen")
    else:
        long_side = _u(rng, 240, 430)  # 24x30 cm up to 35x43 cm films
        fw, fh = (long_side, long_side / aspect) if aspect >= 1 else (long_side * aspect, long_side)
        double = rng.random() < 0.25
        pw = (2 * fw if double else fw) + _u(rng, 20, 180)
        ph = fh + _u(rng, 20, 140)
        p.update(panel=[pw, ph], film=[fw, fh], double_panel=bool(double))
        p["bezel"] = _u(rng, 10, 45)
        p["bezel_albedo"] = list(_pick(rng, [(0.75, 0.75, 0.72), (0.35, 0.35, 0.36), (0.04, 0.04, 0.045),
                                             (0.55, 0.56, 0.58)], [0.35, 0.25, 0.25, 0.15]))
        p["panel_cct"] = _u(rng, 4200, 9500)
        p["uniformity"] = _pick(rng, ["led_grid", "tubes", "edge_lit"], [0.35, 0.4, 0.25])
        p["nonuni_amp"] = _u(rng, 0.03, 0.12) if p["uniformity"] == "led_grid" else _u(rng, 0.05, 0.3)
        p["led_pitch"] = _u(rng, 18, 60)
        p["tubes"] = int(rng.integers(2, 5))
        p["tube_vertical"] = bool(rng.random() < 0.7)
        p["film_rot"] = float(rng.normal(0, 2.5)) if rng.random() < 0.8 else _u(rng, -9, 9)
        p["clips"] = []
        cx_lo = -pw / 2 + fw / 2 if not double else (-pw / 2 + fw / 2 if rng.random() < 0.5 else pw / 2 - fw / 2 - 10)
        slack_x = max(0.0, (pw - fw) / 2 - 5) if not double else 10.0
        fcx = (_u(rng, -1, 1) * slack_x) if not double else cx_lo + _u(rng, 0, 10)
        if rng.random() < 0.45:  # hung from the clip rail: top edge near the panel's top
            fcy = -ph / 2 + fh / 2 + _u(rng, 3, 25)
            n = int(rng.integers(1, 4))
            for k in range(n):
                t = (k + 0.5) / n + _u(rng, -0.12, 0.12)
                p["clips"].append(dict(t=float(np.clip(t, 0.0, 1.0)), w=_u(rng, 14, 32), h=_u(rng, 14, 30),
                                       albedo=list(_pick(rng, [(0.6, 0.6, 0.62), (0.05, 0.05, 0.05),
                                                              (0.8, 0.78, 0.7)], [0.5, 0.3, 0.2]))))
        else:
            fcy = _u(rng, -1, 1) * max(0.0, (ph - fh) / 2 - 5)
        p["off_panel"] = bool(rng.random() < 0.08)
        if p["off_panel"]:  # slid partly past the panel's edge, onto the bezel or wall
            ang = _u(rng, 0, 2 * math.pi)
            fcx += math.cos(ang) * _u(rng, 0.08, 0.25) * fw + math.copysign((pw - fw) / 2, math.cos(ang))
            fcy += math.sin(ang) * _u(rng, 0.08, 0.25) * fh + math.copysign((ph - fh) / 2, math.sin(ang))
        p["film_center"] = [fcx, fcy]
        p["d_min"] = _u(rng, 0.12, 0.35)           # base + fog density
        p["d_range"] = _u(rng, 1.4, 2.6)            # densest part of the film above base
        p["film_gamma"] = _u(rng, 0.8, 1.25)        # film contrast against the monitor image
        p["negative"] = bool(rng.random() < 0.04)   # a duplicating-film copy: dark bones
        p["border"] = _u(rng, 0.008, 0.03) if rng.random() < 0.25 else 0.0  # clear unexposed rim
        p["scratches"] = int(rng.integers(1, 7)) if rng.random() < 0.3 else 0
        p["dust"] = int(rng.integers(5, 40)) if rng.random() < 0.3 else 0
        p["moire_amp"] = 0.0
    p["room"] = _pick(rng, ["dim", "bright"], [0.5, 0.5])
    p["ambient"] = _u(rng, 0.01, 0.07) if p["room"] == "dim" else _u(rng, 0.08, 0.35)
    p["background"] = _pick(rng, ["wall", "desk"], [0.6, 0.4])
    p["bg_albedo"] = ([_u(rng, 0.5, 0.9)] * 3 if p["background"] == "wall" else [_u(rng, 0.25, 0.5), _u(rng, 0.15, 0.3), _u(rng, 0.07, 0.15)])
    p["bg_tint"] = [float(x) for x in rng.normal(1, 0.05, 3)]
    p["objects"] = int(rng.integers(1, 4)) if rng.random() < 0.3 else 0
    p["reflection"] = _pick(rng, ["none", "lamp", "window"], [0.65, 0.2, 0.15]) if not p["screen"] else _pick(rng, ["none", "lamp", "window"], [0.4, 0.3, 0.3])
    p["reflection_level"] = _u(rng, 0.03, 0.5)
    p["hand"] = bool(rng.random() < (0.45 if p["screen"] and p["screen_kind"] == "phone" else 0.18))
    p["skin"] = _u(rng, 0, 1)
    p["hand_seed"] = int(rng.integers(0, 2**31))
    # camera
    p["hfov"] = _u(rng, 62, 80) if p["camera"] == "phone" else _u(rng, 55, 78)
    # share of the frame the film's limiting side spans; 1 in 10 photos framed too tight
    p["coverage"] = _u(rng, 0.45, 0.9) if rng.random() > 0.1 else _u(rng, 0.95, 1.25)
    p["aim"] = [_u(rng, -1, 1), _u(rng, -1, 1)]
    p["sloppy_aim"] = _u(rng, 1.0, 1.6) if rng.random() < 0.1 else 0.7
    steep = rng.random() < 0.2
    pitch, yaw = float(np.clip(rng.normal(0, 7), -18, 18)), float(np.clip(rng.normal(0, 7), -18, 18))
    if steep:  # keystone beyond 25 degrees: a camera held low or to the side
        if rng.random() < 0.6:
            pitch = math.copysign(_u(rng, 25, 40), rng.random() - 0.5)
        else:
            yaw = math.copysign(_u(rng, 25, 40), rng.random() - 0.5)
    p["pitch"], p["yaw"] = pitch, yaw
    p["roll"] = float(rng.normal(0, 3)) if rng.random() > 0.1 else math.copysign(_u(rng, 8, 20), rng.random() - 0.5)
    p["pp_shift"] = [_u(rng, -0.02, 0.02), _u(rng, -0.02, 0.02)]
    if p["camera"] == "webcam":
        p["k1"] = _u(rng, -0.28, -0.04)
    else:
        p["k1"] = _u(rng, -0.1, 0.05) if rng.random() > 0.15 else _u(rng, 0.04, 0.12)
    p["k2"] = _u(rng, -0.03, 0.03)
    p["vignette"] = _u(rng, 0.05, 0.6)
    p["defocus"] = _u(rng, 0.3, 1.4) if rng.random() > 0.15 else _u(rng, 1.8, 4.0)
    p["motion"] = [_u(rng, 3, 14), _u(rng, 0, 180)] if rng.random() < 0.15 else None
    p["flare"] = _u(rng, 0.0, 0.03) if rng.random() > 0.1 else _u(rng, 0.05, 0.12)  # smudged lens
    flicker_p = 0.35 if p["uniformity"] == "tubes" else 0.1
    p["banding"] = [_u(rng, 0.03, 0.2), _u(rng, 1.5, 4.5), _u(rng, 0, 1)] if rng.random() < flicker_p else None
    p["metering"] = _pick(rng, ["mean", "highlight"], [0.6, 0.4] if p["camera"] == "webcam" else [0.3, 0.7])
    p["ev_error"] = float(np.clip(rng.normal(0, 0.4), -1.3, 1.0))
    p["wb_correct"] = _u(rng, 0.5, 1.0)
    p["wb_error"] = [float(x) for x in rng.normal(0, 0.05, 3)]
    p["shot_noise"] = float(math.exp(_u(rng, math.log(2e-4), math.log(4e-3))))
    p["read_noise"] = _u(rng, 0.001, 0.006)
    p["local_tm"] = _u(rng, 0.2, 0.55) if (p["camera"] == "phone" and rng.random() < 0.4) else 0.0
    p["s_curve"] = _u(rng, 0.0, 0.5)
    p["denoise"] = _u(rng, 0.0, 0.7) if p["camera"] == "phone" else _u(rng, 0.0, 0.2)
    p["sharpen"] = [_u(rng, 0.2, 1.3), _u(rng, 0.8, 2.2)]
    p["jpeg_q"] = int(rng.integers(70, 91) if p["camera"] == "webcam" else rng.integers(72, 96))
    p["messenger"] = [_u(rng, 0.55, 1.0), int(rng.integers(50, 81))] if rng.random() < 0.15 else None
    p["noise_seed"] = int(rng.integers(0, 2**31))
    return p


# ---------------------------------------------------------------------------------------------
# Geometry: signed distances (mm, negative inside) so shapes can be drawn antialiased on the
# pixel grid and also tested at single points (are the film's corners hidden?).
# ---------------------------------------------------------------------------------------------

def sd_rect(u, v, c, half, ang_deg):
    a = math.radians(ang_deg)
    du, dv = u - c[0], v - c[1]
    x = du * math.cos(a) + dv * math.sin(a)
    y = -du * math.sin(a) + dv * math.cos(a)
    return np.maximum(np.abs(x) - half[0], np.abs(y) - half[1])


def sd_capsule(u, v, a, b, r):
    ab = np.array(b, float) - np.array(a, float)
    t = np.clip(((u - a[0]) * ab[0] + (v - a[1]) * ab[1]) / max(ab @ ab, 1e-9), 0, 1)
    return np.hypot(u - a[0] - t * ab[0], v - a[1] - t * ab[1]) - r


def sd_ellipse(u, v, c, axes, ang_deg):
    a = math.radians(ang_deg)
    du, dv = u - c[0], v - c[1]
    x = (du * math.cos(a) + dv * math.sin(a)) / axes[0]
    y = (-du * math.sin(a) + dv * math.cos(a)) / axes[1]
    return (np.hypot(x, y) - 1.0) * min(axes)


def film_corners(p):
    (fw, fh), (cx, cy), a = p["film"], p["film_center"], math.radians(p["film_rot"])
    pts = []
    for sx, sy in ((-1, -1), (1, -1), (1, 1), (-1, 1)):  # TL TR BR BL
        x, y = sx * fw / 2, sy * fh / 2
        pts.append((cx + x * math.cos(a) - y * math.sin(a), cy + x * math.sin(a) + y * math.cos(a)))
    return np.array(pts)


def hand_shapes(p, rng):
    """Palm, fingers, thumb and forearm as (kind, args) near a film edge, fingers onto the film."""
    corners = film_corners(p)
    edge = int(rng.integers(1, 4) if p["clips"] else rng.integers(0, 4))  # 0 top, 1 right, 2 bottom, 3 left
    a, b = corners[edge], corners[(edge + 1) % 4]
    t = _u(rng, 0.0, 0.15) if rng.random() < 0.4 else _u(rng, 0.15, 0.85)
    if rng.random() < 0.5:
        t = 1 - t
    base = a + t * (b - a)
    centre = np.mean(corners, axis=0)
    inward = centre - base
    inward /= np.linalg.norm(inward)
    palm_c = base - inward * _u(rng, 50, 85)
    ang = math.degrees(math.atan2(inward[1], inward[0]))
    shapes = [("ellipse", (palm_c, (48.0, 42.0), ang)), ("capsule", (palm_c, palm_c - inward * 400, 38.0))]
    n = int(rng.integers(1, 5))
    # fingers over a film's edge reach well onto it; on a phone they only wrap round the bezel
    reach = _u(rng, 0, 8) if p["screen"] and p["screen_kind"] == "phone" else _u(rng, 5, 40)
    for k in range(n):
        spread = math.radians((k - (n - 1) / 2) * 14 + _u(rng, -5, 5))
        d = np.array([inward[0] * math.cos(spread) - inward[1] * math.sin(spread),
                      inward[0] * math.sin(spread) + inward[1] * math.cos(spread)])
        tip = base + d * reach + (b - a) / np.linalg.norm(b - a) * (k - (n - 1) / 2) * 17
        shapes.append(("capsule", (palm_c + d * 30, tip, _u(rng, 7.5, 9.5))))
    if rng.random() < 0.6:
        side = (b - a) / np.linalg.norm(b - a) * (1 if rng.random() < 0.5 else -1)
        shapes.append(("capsule", (palm_c + side * 35, base + side * 45 + inward * reach * 0.6, 10.5)))
    return shapes


def hand_sd(shapes, u, v):
    d = None
    for kind, args in shapes:
        s = sd_ellipse(u, v, *args) if kind == "ellipse" else sd_capsule(u, v, *args)
        d = s if d is None else np.minimum(d, s)
    return d


def clip_rects(p):
    corners = film_corners(p)
    out = []
    for c in p["clips"]:
        top = corners[0] + c["t"] * (corners[1] - corners[0])
        out.append((top + np.array([0.0, c["h"] * 0.2]), (c["w"] / 2, c["h"] / 2), p["film_rot"], c["albedo"]))
    return out


# ---------------------------------------------------------------------------------------------
# Camera pose and lens: plane (mm) <-> pixels. Distortion is written from distorted to ideal
# coordinates, so rendering (which starts from each output pixel) needs no inversion.
# ---------------------------------------------------------------------------------------------

def _rot(pitch, yaw, roll):
    a, b, c = (math.radians(x) for x in (pitch, yaw, roll))
    rx = np.array([[1, 0, 0], [0, math.cos(a), -math.sin(a)], [0, math.sin(a), math.cos(a)]])
    ry = np.array([[math.cos(b), 0, math.sin(b)], [0, 1, 0], [-math.sin(b), 0, math.cos(b)]])
    rz = np.array([[math.cos(c), -math.sin(c), 0], [math.sin(c), math.cos(c), 0], [0, 0, 1]])
    return rz @ rx @ ry


def camera(p):
    W, H = p["frame"]
    f = (max(W, H) / 2) / math.tan(math.radians(p["hfov"]) / 2)
    fw, fh = p["film"]
    d = f * max(fw / (p["coverage"] * W), fh / (p["coverage"] * H))
    span = np.array([W * d / f, H * d / f])
    off = np.array(p["aim"]) * 0.5 * np.maximum(0.0, span - np.array([fw, fh])) * p["sloppy_aim"]
    aim = np.array([*(np.array(p["film_center"]) - off), 0.0])
    r = _rot(p["pitch"], p["yaw"], p["roll"])
    centre = aim - d * (r.T @ np.array([0.0, 0.0, 1.0]))
    cx, cy = W / 2 * (1 + p["pp_shift"][0]), H / 2 * (1 + p["pp_shift"][1])
    k = np.array([[f, 0, cx], [0, f, cy], [0, 0, 1.0]])
    hom = k @ np.column_stack([r[:, 0], r[:, 1], -r @ centre])
    return dict(f=f, cx=cx, cy=cy, H=hom, Hinv=np.linalg.inv(hom), distance_mm=d)


def pixels_to_plane(cam, p, xs, ys):
    xd, yd = (xs - cam["cx"]) / cam["f"], (ys - cam["cy"]) / cam["f"]
    r2 = xd * xd + yd * yd
    s = 1 + p["k1"] * r2 + p["k2"] * r2 * r2
    xi, yi = cam["cx"] + cam["f"] * xd * s, cam["cy"] + cam["f"] * yd * s
    hi = cam["Hinv"]
    w = hi[2, 0] * xi + hi[2, 1] * yi + hi[2, 2]
    w = np.where(np.abs(w) < 1e-9, 1e-9, w)
    return (hi[0, 0] * xi + hi[0, 1] * yi + hi[0, 2]) / w, (hi[1, 0] * xi + hi[1, 1] * yi + hi[1, 2]) / w


def plane_to_pixels(cam, p, pts):
    h = cam["H"]
    q = np.column_stack([pts, np.ones(len(pts))]) @ h.T
    xu = (q[:, 0] / q[:, 2] - cam["cx"]) / cam["f"]
    yu = (q[:, 1] / q[:, 2] - cam["cy"]) / cam["f"]
    xd, yd = xu.copy(), yu.copy()
    for _ in range(40):  # fixed point of xu = xd * s(|xd|^2)
        r2 = xd * xd + yd * yd
        s = 1 + p["k1"] * r2 + p["k2"] * r2 * r2
        xd, yd = xu / s, yu / s
    return np.column_stack([cam["cx"] + cam["f"] * xd, cam["cy"] + cam["f"] * yd])


# ---------------------------------------------------------------------------------------------
# The scene: linear RGB radiance at plane points, light box emission = 1.0 at its brightest.
# ---------------------------------------------------------------------------------------------

def _a(x):
    return np.asarray(x, np.float32)


def _soft(sd, fp):
    return np.clip(0.5 - sd / fp, 0.0, 1.0)


def _tex(rng, u, v, scale, n=48, blur=2.0):
    """Smooth random texture in plane coordinates. Sampled on every 4th pixel and enlarged: the
    textures are far smoother than a pixel and full-frame sampling was most of the run time."""
    g = ndimage.gaussian_filter(rng.standard_normal((n, n)), blur, mode="wrap")
    g /= g.std() + 1e-9
    lo = ndimage.map_coordinates(g, [v[::4, ::4] / scale, u[::4, ::4] / scale], order=1, mode="grid-wrap")
    big = Image.fromarray(lo.astype(np.float32), "F").resize((lo.shape[1] * 4, lo.shape[0] * 4), Image.BILINEAR)
    return np.asarray(big)[: u.shape[0], : u.shape[1]]


def panel_emission(p, u, v, rng):
    pw, ph = p["panel"]
    a, kind = p.get("nonuni_amp", 0.0), p["uniformity"]
    if kind == "led_grid":  # LEDs behind a diffuser: a faint grid of bumps
        pitch = p["led_pitch"]
        e = 1 - a * 0.5 * (1 - np.cos(2 * np.pi * u / pitch) * np.cos(2 * np.pi * v / pitch))
    elif kind == "tubes":  # fluorescent tubes: stripes, darker tube ends, one aged tube
        n, along, across = p["tubes"], (v if p["tube_vertical"] else u), (u if p["tube_vertical"] else v)
        width, length = (pw, ph) if p["tube_vertical"] else (ph, pw)
        prof = np.zeros_like(u)
        for k in range(n):
            x = -width / 2 + (k + 0.5) * width / n
            prof += (1 - 0.2 * rng.random()) * np.exp(-0.5 * ((across - x) / (0.33 * width / n)) ** 2)
        prof = prof / (prof.max() + 1e-9)
        ends = np.clip((length / 2 - np.abs(along)) / 50.0, 0, 1)
        e = (1 - a) + a * prof * (0.6 + 0.4 * ends)
    elif kind == "edge_lit":  # LED strips along the long edges, light guide sags in the middle
        dist = np.minimum(pw / 2 - np.abs(u), ph / 2 - np.abs(v)) if pw < ph else ph / 2 - np.abs(v)
        e = (1 - a) + a * np.exp(-np.clip(dist, 0, None) / (0.15 * max(pw, ph)))
    else:
        e = np.ones_like(u)
    return e * (1 + 0.04 * _tex(rng, u, v, 250.0))


def film_value(p, img, u, v):
    """Film-local image value in [0, 1] (1 = clear/bright), and the film's signed distance."""
    (fw, fh), (cx, cy), a = p["film"], p["film_center"], math.radians(p["film_rot"])
    du, dv = u - cx, v - cy
    x = du * math.cos(a) + dv * math.sin(a)
    y = -du * math.sin(a) + dv * math.cos(a)
    b = p.get("border", 0.0)
    sx, sy = (x / fw + 0.5 - b) / (1 - 2 * b), (y / fh + 0.5 - b) / (1 - 2 * b)
    ih, iw = img.shape
    val = ndimage.map_coordinates(img, [sy * ih - 0.5, sx * iw - 0.5], order=1, mode="nearest")
    if b > 0:  # an unexposed rim outside the collimated field is clear film
        val = np.where((sx < 0) | (sx > 1) | (sy < 0) | (sy > 1), 1.0, val)
    sd = np.maximum(np.abs(x) - fw / 2, np.abs(y) - fh / 2)
    return val, sd, x, y


def scene(p, img, u, v, fp, rng):
    amb = np.float32(p["ambient"])
    illum = amb * np.clip(1 + 0.25 * _tex(rng, u, v, 500.0), 0.4, None)
    alb = _a(p["bg_albedo"]) * _a(p["bg_tint"])
    if p["background"] == "desk":  # wood grain along a random direction
        ang = rng.uniform(0, np.pi)
        t = u * math.cos(ang) + v * math.sin(ang)
        grain = 1 + 0.15 * np.sin(t / 2.5 + 4 * _tex(rng, u, v, 80.0)) + 0.05 * _tex(rng, u, v, 8.0)
    else:
        grain = 1 + 0.03 * _tex(rng, u, v, 6.0)
    rad = (illum * grain)[..., None] * alb
    pw, ph = p["panel"]
    bz = p["bezel"]
    for _ in range(p["objects"]):  # posters, papers, a monitor on the wall or desk
        side = rng.integers(0, 4)
        half = rng.uniform(60, 300, 2)
        c = _a([rng.uniform(-1, 1) * (pw + 400), rng.uniform(-1, 1) * (ph + 400)])
        c[side % 2] = (1 if side < 2 else -1) * ((pw, ph)[side % 2] / 2 + bz + half[side % 2] + rng.uniform(10, 200))
        m = _soft(sd_rect(u, v, c, half, rng.normal(0, 3)), fp)[..., None]
        rad = rad * (1 - m) + m * illum[..., None] * _a(rng.uniform(0.03, 0.9, 3))
    m_box = _soft(sd_rect(u, v, (0, 0), (pw / 2 + bz, ph / 2 + bz), 0.0), fp)[..., None]
    rad = rad * (1 - m_box) + m_box * illum[..., None] * _a(p["bezel_albedo"])
    m_p = _soft(sd_rect(u, v, (0, 0), (pw / 2, ph / 2), 0.0), fp)[..., None]
    val, sd_f, fx, fy = film_value(p, img, u, v)
    m_f = _soft(sd_f, fp)[..., None]
    white = _a(cct_rgb(p["panel_cct"]))
    e = panel_emission(p, u, v, rng)[..., None] * white
    if p["screen"]:  # the screen shows the image; its sub-pixel grid beats with the sensor's
        content = np.where(m_f[..., 0] > 0.5, p["black_level"] + (1 - p["black_level"]) * val ** 2.2,
                           max(p["screen_bg"] ** 2.2, p["black_level"]))
        pitch, amp = p["pixel_pitch"], p["moire_amp"]
        rows = 1 + 0.5 * amp * np.cos(2 * np.pi * v / pitch)
        sub = np.stack([1 + amp * np.cos(2 * np.pi * (u / pitch - k / 3)) for k in range(3)], -1)
        emit = e * content[..., None] * sub * rows[..., None]
        rad = rad * (1 - m_p) + m_p * (emit + 0.02 * illum[..., None])
    else:
        ev = 1.0 - val if p["negative"] else val
        floor = 10 ** -p["d_range"]
        t = 10 ** -p["d_min"] * (floor + (1 - floor) * np.clip(ev, 0, 1) ** (2.2 * p["film_gamma"]))
        for _ in range(p["scratches"]):  # emulsion scratched off: clear, thin lines
            a0 = rng.uniform(-0.5, 0.5, 2) * p["film"]
            a1 = a0 + rng.normal(0, 80, 2)
            ms = _soft(sd_capsule(fx, fy, a0, a1, rng.uniform(0.15, 0.4)), fp)
            t = t + (10 ** -p["d_min"] - t) * 0.7 * ms
        for _ in range(p["dust"]):
            c = rng.uniform(-0.5, 0.5, 2) * p["film"]
            t = t * (1 - 0.8 * _soft(np.hypot(fx - c[0], fy - c[1]) - rng.uniform(0.3, 1.5), fp))
        # rad is still unlit by the panel: the bezel, wall or desk that a film slid off the
        # panel lies over is seen through it twice (light in, light back out)
        emis = m_p * e
        base = rad * (1 - m_p) + emis
        through = emis * t[..., None] + (1 - m_p) * rad * (t ** 2)[..., None] + 0.03 * illum[..., None]
        rad = base * (1 - m_f) + m_f * through
    for c, half, ang, albedo in clip_rects(p):
        sd = sd_rect(u, v, c, half, ang)
        m = _soft(sd, fp)[..., None]
        shine = 1 + 1.5 * np.exp(-((v - c[1] + half[1] * 0.4) / 2.0) ** 2)[..., None]
        rad = rad * (1 - m) + m * (illum[..., None] + 0.03) * _a(albedo) * shine
    if p["hand"]:
        shapes = hand_shapes(p, np.random.default_rng(p["hand_seed"]))
        light, dark = _a([0.62, 0.42, 0.33]), _a([0.16, 0.09, 0.06])
        skin = light + (dark - light) * p["skin"]
        sd = hand_sd(shapes, u, v)
        m = _soft(sd, fp * 1.5)[..., None]  # hands are nearer the lens: softer edges
        shade = np.clip(0.85 + 0.1 * _tex(rng, u, v, 30.0) + 0.15 * np.tanh(-sd / 15.0), 0.5, 1.2)
        rad = rad * (1 - m) + m * ((illum + 0.04) * shade)[..., None] * skin
    if p["reflection"] != "none":  # glossy film and acrylic mirror a lamp or a window
        c = rng.uniform(-0.45, 0.45, 2) * _a([pw, ph])
        if p["reflection"] == "lamp":
            r = rng.uniform(15, 80)
            g = np.exp(-0.5 * ((u - c[0]) ** 2 + (v - c[1]) ** 2) / r ** 2)
        else:
            half = rng.uniform(40, 160, 2)
            g = _soft(sd_rect(u, v, c, half, rng.normal(0, 5)), 12.0)
            g = g * (1 - 0.8 * _soft(np.minimum(np.abs(u - c[0]), np.abs(v - c[1])) - 3, 2.0))  # window bars
        rad = rad + (m_box * g[..., None]) * p["reflection_level"] * _a([1.0, 0.97, 0.9])
    return rad


# ---------------------------------------------------------------------------------------------
# Optics, sensor and the camera's image processing.
# ---------------------------------------------------------------------------------------------

def _line_kernel(length, angle_deg):
    n = int(math.ceil(length)) | 1
    k = np.zeros((n, n))
    c = n // 2
    a = math.radians(angle_deg)
    for t in np.linspace(-length / 2, length / 2, 4 * n):
        k[int(round(c + t * math.sin(a))), int(round(c + t * math.cos(a)))] += 1
    return k / k.sum()


def _mosaic(x):
    """RGGB Bayer mosaic of an RGB image: one colour per photosite."""
    h, w, _ = x.shape
    m = np.zeros((h, w, 3), bool)
    m[0::2, 0::2, 0] = True
    m[0::2, 1::2, 1] = m[1::2, 0::2, 1] = True
    m[1::2, 1::2, 2] = True
    return None, (x * m).sum(-1), m


def _demosaic(x):
    """Bilinear demosaicing of a mosaicked image (zipper and colour fringes at edges)."""
    _, raw, m = _mosaic(x)
    out = np.empty_like(x)
    k_rb = np.array([[0.25, 0.5, 0.25], [0.5, 1, 0.5], [0.25, 0.5, 0.25]])
    k_g = np.array([[0, 0.25, 0], [0.25, 1, 0.25], [0, 0.25, 0]])
    for ch, k in ((0, k_rb), (1, k_g), (2, k_rb)):
        out[..., ch] = ndimage.convolve(raw * m[..., ch], k, mode="mirror")
    return out, raw, m


def camera_pipeline(p, rad, rng):
    W, H = p["frame"]
    yy, xx = np.mgrid[0:H, 0:W].astype(np.float32) + 0.5
    x = rad.astype(np.float32)
    # lens: veiling glare (stray light spread over the whole frame), vignetting, defocus
    x = x + p["flare"] * x.mean(axis=(0, 1))
    r2 = ((xx - W / 2) ** 2 + (yy - H / 2) ** 2) / ((W / 2) ** 2 + (H / 2) ** 2)
    x = x * (1 / (1 + p["vignette"] * r2) ** 2)[..., None]
    x = ndimage.gaussian_filter(x, (p["defocus"], p["defocus"], 0))
    if p["motion"]:
        k = _line_kernel(*p["motion"])
        x = np.stack([fftconvolve(x[..., c], k, mode="same") for c in range(3)], -1)
    # sensor: mains flicker under a rolling shutter gives bands across the read-out direction
    if p["banding"]:
        amp, cycles, phase = p["banding"]
        pos, n = (yy[:, :1], H) if W >= H else (xx[:1, :], W)
        x = x * (1 + amp * np.sin(2 * np.pi * (pos / n * cycles + phase)))[..., None]
    y = x @ np.array([0.2126, 0.7152, 0.0722], np.float32)
    if p["metering"] == "mean":  # centre-weighted average: a bright box in a dim room clips
        wgt = np.exp(-2 * r2)
        gain = 0.2 / max(float((y * wgt).sum() / wgt.sum()), 1e-6)
    else:  # highlight-protecting metering of phones
        gain = 0.85 / max(float(np.quantile(y[::4, ::4], 0.985)), 1e-6)
    x = x * (gain * 2 ** p["ev_error"])
    white = cct_rgb(p["panel_cct"])
    wb = (1 / white) ** p["wb_correct"] * np.exp(np.array(p["wb_error"]))
    x = x * (wb / wb[1]).astype(np.float32)  # applied to raw, as cameras do before demosaicing
    _, raw, m = _mosaic(x)
    noise = rng.standard_normal(raw.shape).astype(np.float32)
    sigma = np.sqrt(p["shot_noise"] * np.clip(raw, 0, None) + p["read_noise"] ** 2)
    raw_n = np.clip(raw + noise * sigma, 0, 1)  # the sensor saturates
    x, _, _ = _demosaic(np.where(m, raw_n[..., None], 0.0).astype(np.float32))
    x = np.clip(x, 0, 1)
    if p["local_tm"] > 0:  # phone 'HDR': compress the large-scale brightness, keep detail
        ly = np.log(np.clip(x @ np.array([0.2126, 0.7152, 0.0722], np.float32), 1e-4, None))
        base = ndimage.gaussian_filter(ly, max(W, H) / 25)
        x = np.clip(x * np.exp(-p["local_tm"] * (base - base.mean()))[..., None], 0, 1)
    g = x ** (1 / 2.2)
    g = (1 - p["s_curve"]) * g + p["s_curve"] * (3 * g * g - 2 * g * g * g)
    # YCbCr: chroma noise is blurred hard, luma gently; then unsharp masking (halos)
    ycc = np.stack([g @ np.array([0.299, 0.587, 0.114], np.float32),
                    g @ np.array([-0.1687, -0.3313, 0.5], np.float32),
                    g @ np.array([0.5, -0.4187, -0.0813], np.float32)], -1)
    ycc[..., 1:] = ndimage.gaussian_filter(ycc[..., 1:], (2.0, 2.0, 0))
    yl = ycc[..., 0]
    yl = (1 - p["denoise"]) * yl + p["denoise"] * ndimage.gaussian_filter(yl, 1.0)
    amt, rad_s = p["sharpen"]
    yl = yl + amt * (yl - ndimage.gaussian_filter(yl, rad_s))
    yc, cb, cr = yl, ycc[..., 1], ycc[..., 2]
    rgb = np.stack([yc + 1.402 * cr, yc - 0.344136 * cb - 0.714136 * cr, yc + 1.772 * cb], -1)
    return (np.clip(rgb, 0, 1) * 255 + 0.5).astype(np.uint8)


def _jpeg(arr_or_img, q):
    buf = io.BytesIO()
    im = arr_or_img if isinstance(arr_or_img, Image.Image) else Image.fromarray(arr_or_img)
    im.save(buf, format="JPEG", quality=int(q), subsampling=2)  # 4:2:0, as phones and MJPEG
    return buf.getvalue()


def render(img, seed, index, params=None):
    """Photo of the grey film `img` (uint8 HxW). Returns (jpeg bytes, record dict). `params`
    (a render record's "params", possibly edited) replaces the ones drawn from (seed, index)."""
    p = params if params is not None else sample_params(np.random.default_rng([seed, index]), img.shape[1], img.shape[0])
    srng = np.random.default_rng(p["noise_seed"])
    cam = camera(p)
    W, H = p["frame"]
    yy, xx = np.mgrid[0:H, 0:W].astype(np.float64) + 0.5
    u, v = pixels_to_plane(cam, p, xx, yy)
    # pixel footprint on the plane (mm): antialiases every edge drawn with a signed distance
    fp = np.sqrt(np.abs(np.gradient(u, axis=1) * np.gradient(v, axis=0) - np.gradient(u, axis=0) * np.gradient(v, axis=1)))
    u, v, fp = u.astype(np.float32), v.astype(np.float32), np.clip(fp, 1e-3, None).astype(np.float32)
    rad = scene(p, img.astype(np.float32) / 255.0, u, v, fp, srng)
    out = camera_pipeline(p, rad, srng)
    data = _jpeg(out, p["jpeg_q"])
    scale = 1.0
    if p["messenger"]:  # re-sent through a chat app: downscaled and recompressed
        scale, q = p["messenger"]
        im = Image.open(io.BytesIO(data))
        im = im.resize((max(1, round(W * scale)), max(1, round(H * scale))), Image.BILINEAR)
        data = _jpeg(im, q)
        scale = im.size[0] / W
    # where the film is: its corners and its whole outline must lie inside the frame
    corners = film_corners(p)
    cpx = plane_to_pixels(cam, p, corners) * scale
    edge = np.concatenate([corners[k] + np.linspace(0, 1, 60)[:, None] * (corners[(k + 1) % 4] - corners[k])
                           for k in range(4)])
    epx = plane_to_pixels(cam, p, edge) * scale
    fw_, fh_ = W * scale, H * scale

    def inside(pts, margin=1.0):
        return bool(np.all((pts[:, 0] >= margin) & (pts[:, 0] <= fw_ - margin) & (pts[:, 1] >= margin) & (pts[:, 1] <= fh_ - margin)))

    hidden = np.zeros(4, bool)
    if p["hand"]:
        hidden |= hand_sd(hand_shapes(p, np.random.default_rng(p["hand_seed"])), corners[:, 0], corners[:, 1]) < 2.0
    for c, half, ang, _ in clip_rects(p):
        hidden |= sd_rect(corners[:, 0], corners[:, 1], c, half, ang) < 2.0
    poly = cpx
    area = 0.5 * abs(np.dot(poly[:, 0], np.roll(poly[:, 1], -1)) - np.dot(poly[:, 1], np.roll(poly[:, 0], -1)))
    rec = dict(params=p, frame_out=[round(fw_), round(fh_)], corners_px=np.round(cpx, 2).tolist(),
               corners_in_frame=inside(cpx), outline_in_frame=inside(epx),
               corners_hidden=int(hidden.sum()), film_area_frac=float(area / (fw_ * fh_)),
               distance_mm=float(cam["distance_mm"]), tilt_deg=float(max(abs(p["pitch"]), abs(p["yaw"]))))
    rec["fully_in_frame"] = rec["outline_in_frame"] and rec["corners_hidden"] == 0
    return data, rec


if __name__ == "__main__":  # render one film for a look: photosim2.py FILM OUT.jpg [INDEX]
    import json
    import sys

    film = np.asarray(Image.open(sys.argv[1]).convert("L"))
    jpg, rec = render(film, 2024, int(sys.argv[3]) if len(sys.argv) > 3 else 0)
    open(sys.argv[2], "wb").write(jpg)
    print(json.dumps({k: v for k, v in rec.items() if k != "params"}))
