//! A class activation map with twice the rows and columns, from the same weights.
//!
//! The shipped network ends in stride-2 convolutions, so at 160 px its map is 5x5: each cell a
//! fifth of the film, too coarse to tell a lung field from the mediastinum next to it. Run the
//! last stride-2 convolution at stride 1 and dilate every later 3x3 convolution by 2 ("dense
//! evaluation", as DeepLab does), and the head gives a 10x10 map. Why this changes nothing the
//! device decides: a 3x3 convolution with stride 2 and padding 1 computes output `i` from inputs
//! `2i-1, 2i, 2i+1`; at stride 1, output `2i` reads the same three. The next 3x3 convolution,
//! dilated by 2 with padding 2, reads `2i-2, 2i, 2i+2` for output `2i`, which are the old
//! `i-1, i, i+1`, zero padding included. So the dense map at even rows and columns *is* the
//! shipped map, and the logits are taken as its mean there ([`even_mean`]), exactly what the
//! shipped graph's global average pool computes. The odd cells are the same network evaluated
//! half a cell further on. It costs the last stage four times its work: 156 M instead of 89 M
//! multiply-adds for cxr-net at 160 px.
//!
//! The same rewrite in Python (`models/train/cxr/densecam.py`) measures the map for the card.
//! The graph is changed before tract sees it, so it works on the f32, QDQ and QLinearConv files
//! alike; anything it does not understand after the last stride is refused, never guessed at.

use anyhow::{bail, ensure, Result};
use tract_onnx::pb::attribute_proto::AttributeType;
use tract_onnx::pb::{AttributeProto, ModelProto, NodeProto};

/// Operators that may follow the last stride-2 convolution: convolutions (rewritten), pointwise
/// operations, the quantisation steps of an int8 file, and the final pooling.
const AFTER_LAST_STRIDE: [&str; 10] = [
    "Conv",
    "QLinearConv",
    "Relu",
    "Clip",
    "BatchNormalization",
    "QuantizeLinear",
    "DequantizeLinear",
    "GlobalAveragePool",
    "Flatten",
    "Dropout",
];

fn ints(node: &NodeProto, name: &str) -> Option<Vec<i64>> {
    node.attribute
        .iter()
        .find(|a| a.name == name)
        .map(|a| a.ints.clone())
}

fn int(node: &NodeProto, name: &str) -> Option<i64> {
    node.attribute.iter().find(|a| a.name == name).map(|a| a.i)
}

fn set_ints(node: &mut NodeProto, name: &str, values: Vec<i64>) {
    node.attribute.retain(|a| a.name != name);
    node.attribute.push(AttributeProto {
        name: name.to_string(),
        r#type: AttributeType::Ints as i32,
        ints: values,
        ..Default::default()
    });
}

fn is_conv(node: &NodeProto) -> bool {
    node.op_type == "Conv" || node.op_type == "QLinearConv"
}

/// Rewrite `proto` in place so that its class activation map has twice the rows and columns
/// (module notes). Errors, leaving the caller to refuse the model, when the graph is not a plain
/// chain the rewrite is known to be exact for.
pub fn densify(proto: &mut ModelProto) -> Result<()> {
    let Some(graph) = proto.graph.as_mut() else {
        bail!("the ONNX file has no graph");
    };
    let strided = |n: &NodeProto| is_conv(n) && ints(n, "strides") == Some(vec![2, 2]);
    let Some(last) = graph.node.iter().rposition(strided) else {
        bail!("dense map: the model has no stride-2 convolution");
    };
    for n in &graph.node[last + 1..] {
        ensure!(
            AFTER_LAST_STRIDE.contains(&n.op_type.as_str()),
            "dense map: `{}` after the last stride is not supported",
            n.op_type
        );
    }
    set_ints(&mut graph.node[last], "strides", vec![1, 1]);
    for n in graph.node[last + 1..].iter_mut().filter(|n| is_conv(n)) {
        let k = ints(n, "kernel_shape").unwrap_or_default();
        let d = ints(n, "dilations").unwrap_or_else(|| vec![1, 1]);
        ensure!(
            k.len() == 2
                && k[0] == k[1]
                && k[0] % 2 == 1
                && d.len() == 2
                && d[0] == d[1]
                && ints(n, "strides").is_none_or(|s| s == [1, 1])
                && int(n, "group").is_none_or(|g| g == 1)
                && n.attribute.iter().all(|a| a.name != "auto_pad"),
            "dense map: convolution `{}` after the last stride is not a plain square one",
            n.name
        );
        if k[0] == 1 {
            continue;
        }
        let half = k[0] / 2;
        ensure!(
            ints(n, "pads") == Some(vec![d[0] * half; 4]),
            "dense map: convolution `{}` is not padded to keep its size",
            n.name
        );
        set_ints(n, "dilations", vec![2 * d[0], 2 * d[1]]);
        set_ints(n, "pads", vec![2 * d[0] * half; 4]);
    }
    // Recorded shapes of intermediate tensors and outputs are the shipped ones: drop them and
    // let tract infer the new ones.
    graph.value_info.clear();
    for o in &mut graph.output {
        o.r#type = None;
    }
    Ok(())
}

/// Per class, the mean of the dense maps (`classes` maps of `height x width`, row-major, class
/// after class) over their even rows and columns: the shipped network's logits (module notes).
pub fn even_mean(maps: &[f32], classes: usize, height: usize, width: usize) -> Vec<f32> {
    (0..classes)
        .map(|c| {
            let m = &maps[c * height * width..(c + 1) * height * width];
            let (mut sum, mut n) = (0.0f64, 0usize);
            for y in (0..height).step_by(2) {
                for x in (0..width).step_by(2) {
                    sum += f64::from(m[y * width + x]);
                    n += 1;
                }
            }
            (sum / n.max(1) as f64) as f32
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use tract_onnx::pb::GraphProto;

    fn node(op: &str, name: &str, attrs: &[(&str, Vec<i64>)]) -> NodeProto {
        let mut n = NodeProto {
            op_type: op.into(),
            name: name.into(),
            ..Default::default()
        };
        for (k, v) in attrs {
            set_ints(&mut n, k, v.clone());
        }
        n
    }

    fn conv(name: &str, k: i64, stride: i64) -> NodeProto {
        let pad = k / 2;
        node(
            "Conv",
            name,
            &[
                ("kernel_shape", vec![k, k]),
                ("strides", vec![stride, stride]),
                ("pads", vec![pad; 4]),
            ],
        )
    }

    fn model(nodes: Vec<NodeProto>) -> ModelProto {
        ModelProto {
            graph: Some(GraphProto {
                node: nodes,
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    #[test]
    fn the_last_stride_goes_and_later_convolutions_are_dilated() {
        let mut m = model(vec![
            conv("a", 3, 2),
            node("Relu", "r0", &[]),
            conv("b", 3, 2),
            node("Relu", "r1", &[]),
            conv("c", 3, 1),
            node("Relu", "r2", &[]),
            conv("head", 1, 1),
            node("GlobalAveragePool", "gap", &[]),
        ]);
        densify(&mut m).unwrap();
        let g = m.graph.unwrap();
        let get = |name: &str, attr: &str| {
            let n = g.node.iter().find(|n| n.name == name).unwrap();
            ints(n, attr)
        };
        // The earlier stride stays: only the last one is taken out.
        assert_eq!(get("a", "strides"), Some(vec![2, 2]));
        assert_eq!(get("b", "strides"), Some(vec![1, 1]));
        assert_eq!(get("b", "dilations"), None);
        assert_eq!(get("c", "dilations"), Some(vec![2, 2]));
        assert_eq!(get("c", "pads"), Some(vec![2; 4]));
        assert_eq!(get("head", "dilations"), None);
    }

    #[test]
    fn graphs_it_cannot_rewrite_exactly_are_refused() {
        let pooled = vec![conv("a", 3, 2), node("MaxPool", "p", &[]), conv("b", 3, 1)];
        let unpadded = vec![conv("a", 3, 2), {
            let mut c = conv("b", 3, 1);
            set_ints(&mut c, "pads", vec![0; 4]);
            c
        }];
        let grouped = vec![conv("a", 3, 2), {
            let mut c = conv("b", 3, 1);
            c.attribute.push(AttributeProto {
                name: "group".into(),
                r#type: AttributeType::Int as i32,
                i: 4,
                ..Default::default()
            });
            c
        }];
        let unstrided = vec![conv("a", 3, 1), conv("b", 3, 1)];
        for (nodes, says) in [
            (pooled, "MaxPool"),
            (unpadded, "not padded"),
            (grouped, "not a plain square"),
            (unstrided, "no stride-2"),
        ] {
            let e = densify(&mut model(nodes)).unwrap_err().to_string();
            assert!(e.contains(says), "{e}");
        }
    }

    #[test]
    fn the_logits_are_the_mean_of_the_even_cells() {
        // One class, 4x4, values 0..16 row-major: the even cells hold 0, 2, 8 and 10.
        let maps: Vec<f32> = (0..16).map(|v| v as f32).collect();
        assert_eq!(
            even_mean(&maps, 1, 4, 4),
            vec![(0.0 + 2.0 + 8.0 + 10.0) / 4.0]
        );
    }
}
