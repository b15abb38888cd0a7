//! Per-channel requantization of tract's integer convolutions in one pass.
//!
//! Why this exists (issue 22, README "Performance"): tract 0.23 lowers a `QLinearConv` to an
//! integer matrix product followed by its requantization `y = clamp(round(acc * k_scale[c] *
//! x_scale / y_scale) + y0)`. With one scale per tensor that chain is fused into the matrix
//! product's output stage; with one scale per output channel (what our int8 file has, and what
//! keeps it within 0.2% of the float model) tract's `Scale` cannot be fused and the chain runs as
//! four separate passes over every output (`Scale` as a generic broadcasting loop, then `Min`,
//! `Max`, `Cast`), which cost more than the integer matrix products themselves.
//!
//! [`rewrite`] works on the decluttered model before tract optimises it: each quantized
//! convolution with per-channel scales is told to produce its raw i32 accumulators (bias and
//! zero-point corrections stay fused in the matrix product: tract's `q_params = I32` form with
//! unit scales) and one [`RequantPerChannel`] node does scale, round, zero point, clamp and cast
//! in a single loop. The arithmetic is tract's own, step for step (f32 `k_scale * x_scale /
//! y_scale`, ties-to-even rounding of the magnitude, saturating casts), so the results are
//! bit-identical; the tests below check that against the plan tract makes without it, on two
//! small QLinearConv models (`tests/fixtures/qlinear/`).

use tract_onnx::prelude::tract_num_traits::AsPrimitive;
use tract_onnx::prelude::*;
use tract_onnx::tract_core::internal::*;
use tract_onnx::tract_core::ops::cnn::Conv;
use tract_onnx::tract_core::ops::nn::DataFormat;

/// `y[c] = clamp(round_half_even(acc[c] * scale[c]) + zero_point)` cast to `dt`, for an NCHW
/// (or CHW) i32 tensor whose channel axis is `axis`.
#[derive(Clone, Debug)]
pub struct RequantPerChannel {
    /// One factor per output channel: `k_scale[c] * x_scale / y_scale`, computed as tract does.
    pub scale: Arc<Vec<f32>>,
    /// The output zero point.
    pub zero_point: i32,
    /// `u8` or `i8`.
    pub dt: DatumType,
    /// The channel axis of the accumulator tensor.
    pub axis: usize,
}

impl PartialEq for RequantPerChannel {
    fn eq(&self, o: &Self) -> bool {
        // Bit patterns: f32 has no Eq, and two ops are the same op only with the same bits.
        let bits = |s: &[f32]| s.iter().map(|f| f.to_bits()).collect::<Vec<_>>();
        bits(&self.scale) == bits(&o.scale)
            && self.zero_point == o.zero_point
            && self.dt == o.dt
            && self.axis == o.axis
    }
}
impl Eq for RequantPerChannel {}

// One value, exactly as tract's chain computes it: shared with our integer convolution.
use super::qconv::gemm::requant_one;

impl RequantPerChannel {
    fn eval_t<T: Datum + Copy>(&self, acc: &[i32], inner: usize, lo: i32, hi: i32) -> Vec<T>
    where
        i32: AsPrimitive<T>,
    {
        let channels = self.scale.len();
        let mut out: Vec<T> = vec![0i32.as_(); acc.len()];
        // Outer blocks (batch) x channels x inner (spatial): one tight loop per channel plane.
        let inner = inner.max(1);
        for (i, (src, dst)) in acc.chunks(inner).zip(out.chunks_mut(inner)).enumerate() {
            let s = self.scale[i % channels];
            for (d, &a) in dst.iter_mut().zip(src) {
                *d = requant_one(a, s, self.zero_point, lo, hi).as_();
            }
        }
        out
    }
}

impl Op for RequantPerChannel {
    fn name(&self) -> StaticName {
        "RequantPerChannel".into()
    }

    fn info(&self) -> TractResult<Vec<String>> {
        Ok(vec![format!(
            "{} channels on axis {}, zero point {}, to {:?}",
            self.scale.len(),
            self.axis,
            self.zero_point,
            self.dt
        )])
    }

    op_as_typed_op!();
}

impl EvalOp for RequantPerChannel {
    op_out_of_plan!();

    fn eval(&self, _ctx: &EvalContext, inputs: TVec<TValue>) -> TractResult<TVec<TValue>> {
        let input = args_1!(inputs);
        let shape = input.shape().to_vec();
        ensure!(
            shape.get(self.axis) == Some(&self.scale.len()),
            "RequantPerChannel: {} scales for shape {shape:?} axis {}",
            self.scale.len(),
            self.axis
        );
        let inner: usize = shape[self.axis + 1..].iter().product();
        let acc = input.try_as_plain_ram()?.as_slice::<i32>()?;
        let out = match self.dt.unquantized() {
            DatumType::U8 => Tensor::from_shape(&shape, &self.eval_t::<u8>(acc, inner, 0, 255))?,
            DatumType::I8 => Tensor::from_shape(&shape, &self.eval_t::<i8>(acc, inner, -128, 127))?,
            dt => bail!("RequantPerChannel: unsupported output type {dt:?}"),
        };
        Ok(tvec!(out.into_tvalue()))
    }
}

impl TypedOp for RequantPerChannel {
    fn output_facts(&self, inputs: &[&TypedFact]) -> TractResult<TVec<TypedFact>> {
        ensure!(inputs[0].datum_type == i32::datum_type());
        Ok(tvec!(self.dt.fact(inputs[0].shape.clone())))
    }

    as_op!();
}

/// A constant input of `node` as f32 values, or None when it is not a constant.
fn const_f32(model: &TypedModel, node: &TypedNode, slot: usize) -> TractResult<Option<Vec<f32>>> {
    let Some(k) = model.outlet_fact(node.inputs[slot])?.konst.clone() else {
        return Ok(None);
    };
    let k = k.cast_to::<f32>()?;
    Ok(Some(k.try_as_plain_ram()?.as_slice::<f32>()?.to_vec()))
}

/// Rewrites every quantized convolution with per-channel scales (see the module notes); returns
/// how many. Convolutions with one scale, non-constant quantization parameters or another data
/// layout are left to tract, which already fuses the one-scale case.
pub fn rewrite(model: &mut TypedModel) -> TractResult<usize> {
    let mut done = 0;
    for id in model.eval_order()? {
        let node = model.node(id).clone();
        let node = &node;
        let Some(conv) = node.op_as::<Conv>() else {
            continue;
        };
        let Some(dt) = conv.q_params else { continue };
        // Plain u8/i8 outputs only (what the ONNX loader makes of QLinearConv); quantized datum
        // types (QU8/QI8, from NNEF) carry their parameters in the type and are left alone.
        let out_dt = model.outlet_fact(OutletId::new(id, 0))?.datum_type;
        if !matches!(dt.unquantized(), DatumType::U8 | DatumType::I8)
            || !matches!(out_dt, DatumType::U8 | DatumType::I8)
            || node.inputs.len() != 9
            || !matches!(
                conv.pool_spec.data_format,
                DataFormat::NCHW | DataFormat::CHW
            )
        {
            continue;
        }
        let (Some(x_scale), Some(k_scale), Some(y0), Some(y_scale)) = (
            const_f32(model, node, 4)?,
            const_f32(model, node, 6)?,
            const_f32(model, node, 7)?,
            const_f32(model, node, 8)?,
        ) else {
            continue;
        };
        let channels = conv.output_channels();
        let uniform = k_scale.iter().all(|s| s.to_bits() == k_scale[0].to_bits());
        if uniform
            || [&x_scale, &k_scale, &y_scale]
                .iter()
                .any(|v| v.iter().any(|s| !(s.is_finite() && *s > 0.0)))
            || k_scale.len() != channels
            || x_scale.len() != 1
            || y_scale.len() != 1
            || y0.len() != 1
        {
            continue;
        }
        let scale: Vec<f32> = k_scale
            .iter()
            .map(|k| k * x_scale[0] / y_scale[0])
            .collect();
        let axis = if conv.pool_spec.data_format == DataFormat::NCHW {
            1
        } else {
            0
        };

        let mut patch = TypedModelPatch::default();
        let taps = patch.taps(model, &node.inputs)?;
        let one = patch.add_const(format!("{}.unit_scale", node.name), tensor0(1f32))?;
        let y0_dt = model.outlet_fact(node.inputs[7])?.datum_type;
        let zero = patch.add_const(
            format!("{}.zero_y0", node.name),
            tensor0(0i32).cast_to_dt(y0_dt)?.into_owned(),
        )?;
        let inputs = [
            taps[0], taps[1], taps[2], taps[3], one, taps[5], one, zero, one,
        ];
        let raw = Conv {
            q_params: Some(i32::datum_type()),
            ..conv.clone()
        };
        let acc = patch.wire_node(format!("{}.acc", node.name), raw, &inputs)?;
        let op = RequantPerChannel {
            scale: Arc::new(scale),
            zero_point: y0[0] as i32,
            dt: out_dt,
            axis,
        };
        let out = patch.wire_node(format!("{}.requant", node.name), op, &acc)?;
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

    #[test]
    fn ties_go_to_even_on_the_magnitude_and_the_ends_saturate() {
        // 5 * 0.5 = 2.5 -> 2; 7 * 0.5 = 3.5 -> 4; signs mirror.
        assert_eq!(requant_one(5, 0.5, 0, -128, 127), 2);
        assert_eq!(requant_one(7, 0.5, 0, -128, 127), 4);
        assert_eq!(requant_one(-5, 0.5, 0, -128, 127), -2);
        assert_eq!(requant_one(-7, 0.5, 0, -128, 127), -4);
        assert_eq!(requant_one(1000, 1.0, 0, 0, 255), 255);
        assert_eq!(requant_one(-1000, 1.0, 0, 0, 255), 0);
        assert_eq!(requant_one(10, 1.0, -128, -128, 127), -118);
        assert_eq!(requant_one(i32::MAX, 1e9, 0, -128, 127), 127);
        assert_eq!(requant_one(i32::MIN, 1e9, 5, -128, 127), -128);
    }

    #[test]
    fn each_channel_plane_gets_its_own_scale() {
        let op = RequantPerChannel {
            scale: Arc::new(vec![1.0, 0.5]),
            zero_point: 3,
            dt: u8::datum_type(),
            axis: 1,
        };
        let acc = Tensor::from_shape(&[1, 2, 1, 3], &[1i32, 2, 3, 4, 5, -6]).unwrap();
        let out = op
            .eval(&EvalContext::out_of_plan(), tvec!(acc.into_tvalue()))
            .unwrap();
        assert_eq!(
            out[0].try_as_plain_ram().unwrap().as_slice::<u8>().unwrap(),
            &[4, 5, 6, 5, 5, 0]
        );
        let wrong = Tensor::from_shape(&[1, 3, 1, 1], &[1i32, 2, 3]).unwrap();
        assert!(op
            .eval(&EvalContext::out_of_plan(), tvec!(wrong.into_tvalue()))
            .is_err());
    }

    /// The tiny fixture through tract twice, with and without the rewrite: (rewritten
    /// convolutions, op names of the optimised plan, outputs).
    fn run_fixture(act: &str, rewrite_it: bool, x: &Tensor) -> (usize, Vec<String>, Vec<Tensor>) {
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
        let n = if rewrite_it {
            rewrite(&mut model).unwrap()
        } else {
            0
        };
        let model = model.into_optimized().unwrap();
        let ops = model
            .nodes
            .iter()
            .map(|n| n.op().name().to_string())
            .collect();
        let plan = model.into_runnable().unwrap();
        let out = plan.run(tvec!(x.clone().into())).unwrap();
        (n, ops, out.into_iter().map(|t| t.into_tensor()).collect())
    }

    #[test]
    fn the_rewritten_plan_gives_tracts_results_bit_for_bit() {
        for act in ["u8", "i8"] {
            for seed in 0..8u32 {
                // Inputs from a small integer hash: deterministic, wide enough to saturate.
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
                let (n0, ops0, want) = run_fixture(act, false, &x);
                let (n1, ops1, got) = run_fixture(act, true, &x);
                assert_eq!(
                    (n0, n1),
                    (0, 2),
                    "{act}: two per-channel convolutions rewritten"
                );
                assert!(!ops0.iter().any(|o| o == "RequantPerChannel"));
                assert_eq!(
                    ops1.iter().filter(|o| *o == "RequantPerChannel").count(),
                    2,
                    "{act}: {ops1:?}"
                );
                for (w, g) in want.iter().zip(&got) {
                    let w = w.try_as_plain_ram().unwrap();
                    let g = g.try_as_plain_ram().unwrap();
                    let (w, g) = (w.as_slice::<f32>().unwrap(), g.as_slice::<f32>().unwrap());
                    assert_eq!(w.len(), g.len());
                    let same = w.iter().zip(g).all(|(a, b)| a.to_bits() == b.to_bits());
                    assert!(same, "{act} seed {seed}: {w:?} != {g:?}");
                }
            }
        }
    }
}
