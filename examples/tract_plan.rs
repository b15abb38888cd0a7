//! What tract makes of an ONNX file: the time to parse, declutter and optimise it, what the
//! optimised plan runs (operators by kind; for each matrix product, its kernel and data type),
//! and the median time of one inference. For the int8 vs f32 question: a QDQ file becomes float
//! convolutions with quantize/dequantize element-wise work around them, a QLinearConv file
//! becomes integer matrix products. Research use only - not a diagnosis.
//!
//! cargo run --release --example tract_plan -- FILE.onnx [FILE.onnx ...] [--runs 50] [--ops]
//!     [--profile] [--no-int8conv] [--no-requant]   (--ops lists the plan's nodes; --profile the
//!     12 slowest nodes per run; --no-int8conv leaves quantized convolutions to tract instead of
//!     cxr-edge's own integer convolution, src/model/qconv/; --no-requant, with it, leaves them
//!     to tract's own requantization chain instead of the one-pass per-channel requantization,
//!     src/model/requant.rs)

use std::collections::BTreeMap;
use std::time::Instant;

use anyhow::Result;
use tract_onnx::prelude::*;

fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let runs: usize = args
        .iter()
        .position(|a| a == "--runs")
        .and_then(|i| args.get(i + 1))
        .map_or(Ok(50), |s| s.parse())?;
    let list_ops = args.iter().any(|a| a == "--ops");
    let profile = args.iter().any(|a| a == "--profile");
    let requant = !args.iter().any(|a| a == "--no-requant");
    let int8conv = !args.iter().any(|a| a == "--no-int8conv");
    let files: Vec<&String> = args
        .iter()
        .enumerate()
        .filter(|(i, a)| a.ends_with(".onnx") && (*i == 0 || args[i - 1] != "--runs"))
        .map(|(_, a)| a)
        .collect();
    anyhow::ensure!(
        !files.is_empty(),
        "usage: tract_plan FILE.onnx [...] [--runs N] [--ops]"
    );
    println!(
        "{:<28} {:>8} {:>10} {:>9} {:>10} {:>10} {:>10}",
        "FILE", "parse ms", "declutter", "optimise", "infer med", "p10", "p90"
    );
    for f in files {
        let t = Instant::now();
        let model = tract_onnx::onnx()
            .model_for_path(f)?
            .with_input_fact(0, f32::fact([1, 1, 160, 160]).into())?;
        let parse = t.elapsed().as_secs_f64() * 1e3;
        let t = Instant::now();
        let mut typed = model.into_typed()?.into_decluttered()?;
        let ours = if int8conv {
            cxr_edge::model::qconv::rewrite(&mut typed)?
        } else {
            0
        };
        let rewritten = if requant {
            cxr_edge::model::requant::rewrite(&mut typed)?
        } else {
            0
        };
        let declutter = t.elapsed().as_secs_f64() * 1e3;
        let t = Instant::now();
        let opt = typed.into_optimized()?;
        let optimise = t.elapsed().as_secs_f64() * 1e3;
        let mut kinds: BTreeMap<String, usize> = BTreeMap::new();
        for n in &opt.nodes {
            let name = n.op().name().to_string();
            *kinds.entry(name).or_default() += 1;
        }
        let plan = opt.clone().into_runnable()?;
        let x: Tensor =
            tract_ndarray::Array4::<f32>::from_shape_fn((1, 1, 160, 160), |(_, _, y, x)| {
                ((x * 7 + y * 13) % 255) as f32 / 64.0 - 2.0
            })
            .into();
        plan.run(tvec!(x.clone().into()))?;
        let mut ms: Vec<f64> = (0..runs)
            .map(|_| {
                let t = Instant::now();
                plan.run(tvec!(x.clone().into())).unwrap();
                t.elapsed().as_secs_f64() * 1e3
            })
            .collect();
        ms.sort_by(f64::total_cmp);
        let q = |p: f64| ms[((ms.len() - 1) as f64 * p).round() as usize];
        let short = std::path::Path::new(f)
            .file_name()
            .map_or(f.clone(), |n| n.to_string_lossy().into_owned());
        println!(
            "{:<28} {:>8.1} {:>10.1} {:>9.1} {:>10.3} {:>10.3} {:>10.3}",
            short,
            parse,
            declutter,
            optimise,
            q(0.5),
            q(0.1),
            q(0.9)
        );
        if ours > 0 {
            println!("    {ours} convolutions run by cxr-edge's Int8Conv (src/model/qconv/)");
        }
        if rewritten > 0 {
            println!("    {rewritten} convolutions requantized in one pass (src/model/requant.rs)");
        }
        println!(
            "    plan: {}",
            kinds
                .iter()
                .map(|(k, n)| format!("{k} x{n}"))
                .collect::<Vec<_>>()
                .join(", ")
        );
        if profile {
            // Time spent per node over `runs` inferences: where the milliseconds go.
            let mut per: Vec<(f64, String, String)> = opt
                .nodes
                .iter()
                .map(|n| (0.0, n.name.clone(), n.op().name().to_string()))
                .collect();
            let mut state = tract_onnx::tract_core::plan::SimpleState::new(&plan)?;
            for _ in 0..runs {
                state.run_plan_with_eval(
                    tvec!(x.clone().into()),
                    |ctx, op_state, node, input| {
                        let t = Instant::now();
                        let r = tract_onnx::tract_core::plan::eval(ctx, op_state, node, input);
                        per[node.id].0 += t.elapsed().as_secs_f64() * 1e3;
                        r
                    },
                )?;
            }
            per.sort_by(|a, b| b.0.total_cmp(&a.0));
            for (ms, name, op) in per.iter().take(12) {
                println!("    {:>8.3} ms/run  {:<40} {}", ms / runs as f64, name, op);
            }
        }
        if list_ops {
            for n in &opt.nodes {
                let info = n.op().info().unwrap_or_default().join("; ");
                println!("    {:<40} {:<20} {}", n.name, n.op().name(), info);
            }
        }
    }
    Ok(())
}
