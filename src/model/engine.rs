//! Inference in tract: load once, fix the input shape, optimise once, then run many times.

use std::io::Cursor;
use std::sync::Arc;

use anyhow::{ensure, Context, Result};
use tract_onnx::prelude::*;

use super::manifest::Manifest;

type Plan = Arc<TypedRunnableModel>;

/// Raw network outputs for one image.
#[derive(Clone, Debug)]
pub struct RawOutput {
    /// One logit per manifest label, in label order.
    pub logits: Vec<f32>,
    /// Class activation maps for every label.
    pub cam: Cam,
}

/// Class activation maps, `[classes, height, width]`, straight from the graph.
#[derive(Clone, Debug)]
pub struct Cam {
    /// Number of maps, one per label.
    pub classes: usize,
    /// Map height in cells.
    pub height: usize,
    /// Map width in cells.
    pub width: usize,
    /// Map values, row-major, class after class.
    pub data: Vec<f32>,
}

impl Cam {
    /// The `height * width` map for label index `class`, row-major.
    pub fn map(&self, class: usize) -> &[f32] {
        let n = self.height * self.width;
        &self.data[class * n..(class + 1) * n]
    }
}

/// A loaded, optimised network. Cheap to share between threads: `run` takes `&self`.
pub struct Engine {
    plan: Plan,
    width: usize,
    height: usize,
    classes: usize,
    /// The graph was densified (`dense.rs`): logits come from the map's even cells.
    dense: bool,
}

impl Engine {
    /// Build the plan from verified model bytes.
    pub fn load(manifest: &Manifest, onnx_bytes: &[u8]) -> Result<Engine> {
        let (w, h) = (manifest.input.width, manifest.input.height);
        let classes = manifest.labels.len();
        let onnx = tract_onnx::onnx();
        let mut proto = onnx
            .proto_model_for_read(&mut Cursor::new(onnx_bytes))
            .context("the ONNX file could not be parsed")?;
        let dense = manifest.outputs.dense_cam;
        if dense {
            super::dense::densify(&mut proto)
                .context("the manifest asks for a dense map (outputs.dense_cam)")?;
        }
        let model = onnx
            .model_for_proto_model(&proto)
            .context("the ONNX file could not be parsed")?;
        let mut model = model
            .with_input_names([manifest.input.name.as_str()])
            .with_context(|| format!("the model has no input named `{}`", manifest.input.name))?
            .with_input_fact(0, f32::fact([1, 1, h, w]).into())?
            .with_outputs_by_name([
                manifest.outputs.logits.as_str(),
                manifest.outputs.cam.as_str(),
            ])
            .context("the model lacks the outputs named in the manifest")?
            .into_typed()
            .context("tract could not type the model")?
            .into_decluttered()
            .context("tract could not simplify the model")?;
        // Decluttering again is only needed when the rewrite added nodes (it is the costly part
        // of loading the QDQ file); `into_optimized` would do it unconditionally.
        // Our integer convolution first (it takes the convolutions it can whole), then the
        // one-pass requantization for those it left to tract.
        let ours = super::qconv::rewrite(&mut model)
            .context("the integer convolutions could not be wired")?;
        if ours
            + super::requant::rewrite(&mut model)
                .context("the one-pass requantization could not be wired")?
            > 0
        {
            model
                .declutter()
                .context("tract could not simplify the model")?;
        }
        model
            .optimize()
            .context("tract could not optimise the model")?;
        let plan = model.into_runnable()?;
        let engine = Engine {
            plan,
            width: w,
            height: h,
            classes,
            dense,
        };
        // One run on a blank image proves the shapes before the first real film arrives.
        let probe = engine
            .run(&vec![0.0; w * h])
            .context("the model failed its first run")?;
        ensure!(
            probe.logits.len() == classes,
            "model gives {} logits for {} labels",
            probe.logits.len(),
            classes
        );
        Ok(engine)
    }

    /// Run the network on one preprocessed `width * height` tensor.
    pub fn run(&self, input: &[f32]) -> Result<RawOutput> {
        ensure!(
            input.len() == self.width * self.height,
            "input tensor has the wrong size"
        );
        let tensor = Tensor::from_shape(&[1, 1, self.height, self.width], input)?;
        let out = self.plan.run(tvec!(tensor.into()));
        clear_avx_upper_state();
        let out = out?;
        let logits = out[0]
            .to_plain_array_view::<f32>()
            .context("logits are not f32")?;
        let logits: Vec<f32> = logits.iter().copied().collect();
        let cam_view = out[1]
            .to_plain_array_view::<f32>()
            .context("cam is not f32")?;
        let shape = cam_view.shape().to_vec();
        ensure!(
            shape.len() == 4 && shape[0] == 1 && shape[1] == self.classes,
            "cam output has shape {shape:?}, expected [1, {}, h, w]",
            self.classes
        );
        let cam = Cam {
            classes: shape[1],
            height: shape[2],
            width: shape[3],
            data: cam_view.iter().copied().collect(),
        };
        // The densified graph's own pooling averages the odd cells too; the decision is the
        // shipped network's, the mean over the even ones.
        let logits = if self.dense {
            super::dense::even_mean(&cam.data, cam.classes, cam.height, cam.width)
        } else {
            logits
        };
        Ok(RawOutput { logits, cam })
    }
}

/// tract's x86 kernels return with the upper halves of the AVX registers dirty. On Intel CPUs
/// the SSE code that runs next on this thread (Rust's default x86_64 target is SSE2) then pays
/// a state-transition penalty until something clears it: on a Xeon, simulating a film photo
/// right after one inference took ~400 ms instead of ~40 ms (`examples/photo_eval.rs`: 8.5 min
/// against 70 s). The appliance's own stages mostly escaped it because glibc's AVX memcpy and
/// memset clear the state as a side effect, which is not something to rely on. `vzeroupper`
/// ends it. ARM has nothing like it.
fn clear_avx_upper_state() {
    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("avx") {
        // SAFETY: the CPU has AVX (checked just above); `vzeroupper` only clears the upper
        // register halves, which no Rust code holds live across this call.
        unsafe { zero_upper() }
    }
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx")]
fn zero_upper() {
    std::arch::x86_64::_mm256_zeroupper();
}
