//! Our own integer convolution for tract (issue 22, route c): one op per quantized convolution
//! that does im2col, the integer matrix product ([`gemm`]) and the per-channel requantization
//! in one pass, on a kernel that uses the CPU's 16-bit multiply-add.
//!
//! Why (README "Performance"): after the legacy-SSE fix in our tract-linalg fork, tract's AVX2
//! integer kernel still needs five instructions per 8 multiply-adds (bytes widened to i32),
//! and its QLinearConv plan stays 3-4x slower than f32. `vpmaddwd` does 16 exact
//! multiply-adds per instruction on i16 pairs.
//!
//! [`rewrite`] runs on the decluttered model before [`super::requant::rewrite`], and replaces
//! each quantized convolution it can take whole — NCHW or CHW, OIHW kernel, group 1, no
//! dilation, a concrete input shape, constant quantization parameters with one scale per
//! output channel, 8-bit input and output — with one [`Int8Conv`] node. The result is the same
//! as tract's, bit for bit: the accumulators are exact integers either way, and the
//! requantization is [`gemm::requant_one`], which is tract's arithmetic step for step (tests
//! below, on the QLinearConv fixtures, against tract's own plan). Everything else is left to
//! tract (and to `requant::rewrite`), and so is everything on a CPU without a kernel of ours
//! (so far: all but x86_64 with AVX2; [`Kernel::detect`]).

pub mod gemm;

use tract_onnx::prelude::*;
use tract_onnx::tract_core::internal::*;
use tract_onnx::tract_core::ops::cnn::{Conv, KernelFormat};
use tract_onnx::tract_core::ops::nn::DataFormat;

use gemm::{Geometry, Kernel, PackedWeights, Scratch};

/// One quantized convolution: `y = requant(sum (x - x0)(w - w0) + bias)` per output channel.
#[derive(Clone, Debug)]
pub struct Int8Conv {
    geometry: Geometry,
    /// Whether tensors carry a batch axis (NCHW) or not (CHW).
    batched: bool,
    weights: Arc<PackedWeights>,
    bias: Arc<Vec<i32>>,
    x0: i32,
    /// `k_scale[c] * x_scale / y_scale`, as tract computes it.
    scale: Arc<Vec<f32>>,
    y0: i32,
    x_dt: DatumType,
    y_dt: DatumType,
    kernel: Kernel,
}

impl PartialEq for Int8Conv {
    fn eq(&self, o: &Self) -> bool {
        let bits = |s: &[f32]| s.iter().map(|f| f.to_bits()).collect::<Vec<_>>();
        self.geometry == o.geometry
            && self.batched == o.batched
            && self.weights == o.weights
            && self.bias == o.bias
            && self.x0 == o.x0
            && bits(&self.scale) == bits(&o.scale)
            && self.y0 == o.y0
            && self.x_dt == o.x_dt
            && self.y_dt == o.y_dt
            && self.kernel == o.kernel
    }
}
impl Eq for Int8Conv {}

impl Int8Conv {
    fn output_shape(&self, batch: usize) -> TVec<usize> {
        let g = &self.geometry;
        let mut s = tvec![self.weights.m, g.out_height, g.out_width];
        if self.batched {
            s.insert(0, batch);
        }
        s
    }

    fn eval_t<X: Datum + Copy + Into<i32>>(&self, x: &[X], batch: usize) -> TractResult<Tensor> {
        thread_local! {
            // The padded image and packed panels, kept between calls: allocating them per call
            // costs page faults on every inference.
            static SCRATCH: std::cell::RefCell<Scratch> = Default::default();
        }
        let g = &self.geometry;
        let (in_len, out_len) = (g.channels * g.height * g.width, self.weights.m * g.pixels());
        ensure!(
            x.len() == batch * in_len,
            "Int8Conv: input of {} values",
            x.len()
        );
        let (lo, hi) = if self.y_dt.unquantized() == DatumType::U8 {
            (0, 255)
        } else {
            (-128, 127)
        };
        let rq = gemm::Requant {
            scale: &self.scale,
            zero_point: self.y0,
            lo,
            hi,
        };
        let mut out = Tensor::zero_dt(self.y_dt, &self.output_shape(batch))?;
        let bytes = out.as_bytes_mut();
        SCRATCH.with_borrow_mut(|scratch| {
            for (xb, yb) in x.chunks(in_len).zip(bytes.chunks_mut(out_len)) {
                gemm::conv(
                    self.kernel,
                    g,
                    &self.weights,
                    &self.bias,
                    xb,
                    self.x0,
                    &rq,
                    scratch,
                    yb,
                );
            }
        });
        Ok(out)
    }
}

impl Op for Int8Conv {
    fn name(&self) -> StaticName {
        "Int8Conv".into()
    }

    fn info(&self) -> TractResult<Vec<String>> {
        let g = &self.geometry;
        Ok(vec![format!(
            "{} -> {} channels, {}x{} kernel, stride {:?}, {:?} -> {:?}, {:?} kernel",
            g.channels,
            self.weights.m,
            g.kernel.0,
            g.kernel.1,
            g.stride,
            self.x_dt,
            self.y_dt,
            self.kernel
        )])
    }

    op_as_typed_op!();
}

impl EvalOp for Int8Conv {
    op_out_of_plan!();

    fn eval(&self, _ctx: &EvalContext, inputs: TVec<TValue>) -> TractResult<TVec<TValue>> {
        let input = args_1!(inputs);
        let shape = input.shape();
        let g = &self.geometry;
        let want: TVec<usize> = if self.batched {
            tvec![
                shape.first().copied().unwrap_or(0),
                g.channels,
                g.height,
                g.width
            ]
        } else {
            tvec![g.channels, g.height, g.width]
        };
        ensure!(
            shape == &*want,
            "Int8Conv: input shape {shape:?}, expected {want:?}"
        );
        let batch = if self.batched { shape[0] } else { 1 };
        let x = input.try_as_plain_ram()?;
        let out = match self.x_dt.unquantized() {
            DatumType::U8 => self.eval_t(x.as_slice::<u8>()?, batch)?,
            DatumType::I8 => self.eval_t(x.as_slice::<i8>()?, batch)?,
            dt => bail!("Int8Conv: unsupported input type {dt:?}"),
        };
        Ok(tvec!(out.into_tvalue()))
    }
}

impl TypedOp for Int8Conv {
    fn output_facts(&self, inputs: &[&TypedFact]) -> TractResult<TVec<TypedFact>> {
        ensure!(
            inputs[0].datum_type == self.x_dt,
            "Int8Conv: input type {:?}",
            inputs[0].datum_type
        );
        let batch = if self.batched {
            inputs[0].shape[0]
                .to_usize()
                .context("Int8Conv: symbolic batch")?
        } else {
            1
        };
        Ok(tvec!(self.y_dt.fact(self.output_shape(batch))))
    }

    as_op!();
}

/// A constant input of `node`, cast to `T`, or None when it is not a constant.
fn konst<T: Datum + Copy>(
    model: &TypedModel,
    node: &TypedNode,
    slot: usize,
) -> TractResult<Option<(Vec<T>, TVec<usize>)>> {
    let Some(k) = model.outlet_fact(node.inputs[slot])?.konst.clone() else {
        return Ok(None);
    };
    let shape = k.shape().into();
    let k = k.cast_to::<T>()?;
    Ok(Some((
        k.try_as_plain_ram()?.as_slice::<T>()?.to_vec(),
        shape,
    )))
}

/// The geometry of a convolution on a concrete input shape (NCHW or CHW), and whether the
/// tensors are batched; None for shapes the op does not take.
fn geometry_of(conv: &Conv, dims: &[usize]) -> Option<(Geometry, bool)> {
    let ps = &conv.pool_spec;
    let batched = ps.data_format == DataFormat::NCHW;
    if dims.len() != if batched { 4 } else { 3 } || ps.kernel_shape.len() != 2 {
        return None;
    }
    let (c, spatial) = if batched {
        (dims[1], &dims[2..])
    } else {
        (dims[0], &dims[1..])
    };
    if c != conv.input_channels() {
        return None;
    }
    let strides = ps.strides();
    let pads = ps.computed_padding(spatial);
    let g = Geometry::new(
        c,
        (spatial[0], spatial[1]),
        (ps.kernel_shape[0], ps.kernel_shape[1]),
        (strides[0], strides[1]),
        (pads[0].pad_before, pads[1].pad_before),
        (pads[0].pad_after, pads[1].pad_after),
    )?;
    Some((g, batched))
}

/// The constant inputs of a quantized convolution, in tract's order after the image: kernel,
/// bias, x0, x_scale, w0, k_scale, y0, y_scale.
struct QConsts {
    w: Vec<i32>,
    w_shape: TVec<usize>,
    bias: Vec<i32>,
    x0: Vec<i32>,
    x_scale: Vec<f32>,
    w0: Vec<i32>,
    k_scale: Vec<f32>,
    y0: Vec<i32>,
    y_scale: Vec<f32>,
}

impl QConsts {
    fn of(model: &TypedModel, node: &TypedNode) -> TractResult<Option<QConsts>> {
        let i = |slot| konst::<i32>(model, node, slot);
        let f = |slot| konst::<f32>(model, node, slot);
        let (Some((w, w_shape)), Some((bias, _)), Some((x0, _)), Some((x_scale, _))) =
            (i(1)?, i(2)?, i(3)?, f(4)?)
        else {
            return Ok(None);
        };
        let (Some((w0, _)), Some((k_scale, _)), Some((y0, _)), Some((y_scale, _))) =
            (i(5)?, f(6)?, i(7)?, f(8)?)
        else {
            return Ok(None);
        };
        Ok(Some(QConsts {
            w,
            w_shape,
            bias,
            x0,
            x_scale,
            w0,
            k_scale,
            y0,
            y_scale,
        }))
    }

    /// What the op can take: one scale per output channel (one scale per tensor is fused by
    /// tract itself, with its own rounding, and left to it so that results stay tract's),
    /// positive finite scales, shapes that match, 8-bit values, sums that cannot wrap.
    fn usable(&self, m: usize, w_shape: [usize; 4], k: usize) -> bool {
        let uniform = self
            .k_scale
            .iter()
            .all(|s| s.to_bits() == self.k_scale[0].to_bits());
        let positive = |v: &[f32]| v.iter().all(|s| s.is_finite() && *s > 0.0);
        let byte = |v: &i32| (-255..=255).contains(v);
        let largest_bias = self
            .bias
            .iter()
            .map(|&b| (b as i64).abs())
            .max()
            .unwrap_or(0);
        !uniform
            && positive(&self.x_scale)
            && positive(&self.k_scale)
            && positive(&self.y_scale)
            && (self.k_scale.len(), self.x_scale.len(), self.y_scale.len()) == (m, 1, 1)
            && (self.x0.len(), self.y0.len()) == (1, 1)
            && (self.w0.len() == 1 || self.w0.len() == m)
            && (self.bias.len() == m || self.bias.len() == 1)
            && *self.w_shape == w_shape
            && self.w.iter().chain(&self.w0).chain(&self.x0).chain(&self.y0).all(byte)
            && self.w.iter().enumerate().all(|(i, v)| byte(&(v - self.w0[if self.w0.len() == 1 { 0 } else { i / k }])))
            // gemm::conv's contract: K products of at most 255 x 255, plus the bias
            && (k as i64) * 255 * 255 + largest_bias < i32::MAX as i64
    }
}

/// Builds the op for one convolution node, or None when the node is not one it takes whole.
fn int8_conv_for(
    model: &TypedModel,
    node: &TypedNode,
    kernel: Kernel,
) -> TractResult<Option<Int8Conv>> {
    let Some(conv) = node.op_as::<Conv>() else {
        return Ok(None);
    };
    let Some(q) = conv.q_params else {
        return Ok(None);
    };
    let x_fact = model.outlet_fact(node.inputs[0])?;
    let y_dt = model.outlet_fact(OutletId::new(node.id, 0))?.datum_type;
    let (x_dt, ps) = (x_fact.datum_type, &conv.pool_spec);
    let eight = |dt: DatumType| matches!(dt, DatumType::U8 | DatumType::I8);
    if !eight(q.unquantized())
        || !eight(x_dt)
        || !eight(y_dt)
        || node.inputs.len() != 9
        || conv.group != 1
        || conv.kernel_fmt != KernelFormat::OIHW
        || ps.dilations().iter().any(|&d| d != 1)
        || !matches!(ps.data_format, DataFormat::NCHW | DataFormat::CHW)
    {
        return Ok(None);
    }
    let Some(dims) = x_fact.shape.as_concrete() else {
        return Ok(None);
    };
    let Some((geometry, batched)) = geometry_of(conv, dims) else {
        return Ok(None);
    };
    let Some(q) = QConsts::of(model, node)? else {
        return Ok(None);
    };
    let (m, k) = (conv.output_channels(), geometry.k());
    let shape = [m, geometry.channels, geometry.kernel.0, geometry.kernel.1];
    if !q.usable(m, shape, k) {
        return Ok(None);
    }
    // In [-255, 255] (checked by `usable`): exact in i16.
    let w: Vec<i16> =
        q.w.iter()
            .enumerate()
            .map(|(i, &v)| (v - q.w0[if q.w0.len() == 1 { 0 } else { i / k }]) as i16)
            .collect();
    Ok(Some(Int8Conv {
        geometry,
        batched,
        weights: Arc::new(PackedWeights::new(&w, m, k)),
        bias: Arc::new(if q.bias.len() == m {
            q.bias
        } else {
            vec![q.bias[0]; m]
        }),
        x0: q.x0[0],
        scale: Arc::new(
            q.k_scale
                .iter()
                .map(|s| s * q.x_scale[0] / q.y_scale[0])
                .collect(),
        ),
        y0: q.y0[0],
        x_dt,
        y_dt,
        kernel,
    }))
}

/// Replaces every quantized convolution it can take whole (module notes); returns how many.
/// Nothing on a CPU without a kernel of ours ([`Kernel::detect`]).
pub fn rewrite(model: &mut TypedModel) -> TractResult<usize> {
    match Kernel::detect() {
        Some(kernel) => rewrite_with(model, kernel),
        None => Ok(0),
    }
}

fn rewrite_with(model: &mut TypedModel, kernel: Kernel) -> TractResult<usize> {
    let mut done = 0;
    for id in model.eval_order()? {
        let node = model.node(id).clone();
        let Some(op) = int8_conv_for(model, &node, kernel)? else {
            continue;
        };
        let mut patch = TypedModelPatch::default();
        let x = patch.tap_model(model, node.inputs[0])?;
        let out = patch.wire_node(format!("{}.int8", node.name), op, &[x])?;
        patch.shunt_outside(model, OutletId::new(id, 0), out[0])?;
        patch.obliterate(id)?;
        patch.apply(model)?;
        done += 1;
    }
    Ok(done)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run_fixture(
        act: &str,
        with: Option<Kernel>,
        x: &Tensor,
    ) -> (usize, Vec<String>, Vec<Tensor>) {
        let path = format!(
            "{}/tests/fixtures/qlinear/tiny-{act}.onnx",
            env!("CARGO_MANIFEST_DIR")
        );
        let mut model = tract_onnx::onnx()
            .model_for_path(path)
            .unwrap()
            .into_typed()
            .unwrap()
            .into_decluttered()
            .unwrap();
        let n = match with {
            Some(k) => rewrite_with(&mut model, k).unwrap(),
            None => 0,
        };
        let model = model.into_optimized().unwrap();
        let ops = model
            .nodes
            .iter()
            .map(|n| n.op().name().to_string())
            .collect();
        let out = model
            .into_runnable()
            .unwrap()
            .run(tvec!(x.clone().into()))
            .unwrap();
        (n, ops, out.into_iter().map(|t| t.into_tensor()).collect())
    }

    #[test]
    fn int8_conv_gives_tracts_results_bit_for_bit_with_every_kernel() {
        for act in ["u8", "i8"] {
            for seed in 0..8u32 {
                let x = Tensor::from_shape(
                    &[1, 3, 12, 12],
                    &(0..432u32)
                        .map(|i| {
                            let h = (i ^ seed.wrapping_mul(0x9e37_79b9)).wrapping_mul(0x85eb_ca6b);
                            ((h >> 16) % 601) as f32 / 100.0 - 3.0
                        })
                        .collect::<Vec<_>>(),
                )
                .unwrap();
                let (_, ops0, want) = run_fixture(act, None, &x);
                assert!(!ops0.iter().any(|o| o == "Int8Conv"));
                for k in Kernel::available() {
                    let (n, ops, got) = run_fixture(act, Some(k), &x);
                    assert_eq!(n, 2, "{act}: two per-channel convolutions taken");
                    assert_eq!(
                        ops.iter().filter(|o| *o == "Int8Conv").count(),
                        2,
                        "{act}: {ops:?}"
                    );
                    for (w, g) in want.iter().zip(&got) {
                        let (w, g) = (w.try_as_plain_ram().unwrap(), g.try_as_plain_ram().unwrap());
                        let (w, g) = (w.as_slice::<f32>().unwrap(), g.as_slice::<f32>().unwrap());
                        assert_eq!(w.len(), g.len());
                        let same = w.iter().zip(g).all(|(a, b)| a.to_bits() == b.to_bits());
                        assert!(same, "{act} seed {seed} {k:?}: {w:?} != {g:?}");
                    }
                }
            }
        }
    }
}
