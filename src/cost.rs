//! What an answer cost: the bytes its forward passes read and the multiply-adds they did,
//! counted by the model as it runs them (`Work`), and an energy range estimated from them
//! with published per-byte and per-operation figures for the device in use (`EnergyModel`).
//!
//! The estimate is the computation's own energy: memory traffic and arithmetic. It leaves
//! out the screen, the idle draw of the device and the download of the model, and it is a
//! range because the figures span device generations; the page shows the method with it.

use serde::Serialize;

/// Where a backend computes, which decides the energy figures that apply.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Device {
    Cpu,
    Gpu,
}

/// What forward passes moved and computed: every weight matrix is read once per pass (a
/// prompt chunk reuses each weight row over all its tokens while it is in cache), the
/// embedding only for the rows the pass embeds, the output projection only when logits
/// are asked for; attention reads each attended key and value once per layer.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Work {
    pub weight_bytes: u64,
    /// The KV cache read by attention and written by the new tokens (f16 keys and values).
    pub cache_bytes: u64,
    pub multiply_adds: u64,
}

impl std::ops::Add for Work {
    type Output = Work;
    fn add(self, o: Work) -> Work {
        Work {
            weight_bytes: self.weight_bytes + o.weight_bytes,
            cache_bytes: self.cache_bytes + o.cache_bytes,
            multiply_adds: self.multiply_adds + o.multiply_adds,
        }
    }
}

impl std::ops::Sub for Work {
    type Output = Work;
    fn sub(self, o: Work) -> Work {
        Work {
            weight_bytes: self.weight_bytes.saturating_sub(o.weight_bytes),
            cache_bytes: self.cache_bytes.saturating_sub(o.cache_bytes),
            multiply_adds: self.multiply_adds.saturating_sub(o.multiply_adds),
        }
    }
}

/// Energy per byte read from memory and per multiply-add, as a [low, high] range in
/// picojoules, with where the figures come from.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct EnergyModel {
    pub device: Device,
    pub picojoules_per_byte: [f64; 2],
    pub picojoules_per_multiply_add: [f64; 2],
    pub sources: &'static [&'static str],
}

const HOROWITZ: &str = "M. Horowitz, \"Computing's energy problem (and what we can do about it)\", ISSCC 2014, doi:10.1109/ISSCC.2014.6757323";
const OCONNOR: &str = "M. O'Connor et al., \"Fine-Grained DRAM: Energy-Efficient DRAM for Extreme Bandwidth Systems\", MICRO 2017, doi:10.1145/3123939.3124545";
const DALLY: &str =
    "W. Dally, \"Hardware for Deep Learning\", Hot Chips 2023 keynote (45 nm figures)";

/// A CPU (native, or wasm in a page) reading DRAM. Per byte: Horowitz gives 1.3–2.6 nJ
/// per 64-bit DRAM access (160–330 pJ per byte), and about 10 pJ per bit (80 per byte)
/// with better I/O. Per multiply-add: the arithmetic itself is 0.2–4.6 pJ, but each
/// instruction on a general-purpose core costs about 70 pJ of overhead (Horowitz); a SIMD
/// instruction shares it over 4 to 32 multiply-adds, and quantized weights take extra
/// instructions to unpack.
pub const CPU: EnergyModel = EnergyModel {
    device: Device::Cpu,
    picojoules_per_byte: [80.0, 330.0],
    picojoules_per_multiply_add: [2.0, 20.0],
    sources: &[HOROWITZ],
};

/// A GPU. Per byte: from high-bandwidth memory (HBM2, about 4 pJ per bit: 32 per byte)
/// and graphics memory (GDDR5, about 14 pJ per bit) in O'Connor et al., to the system
/// DRAM an integrated GPU shares with the CPU (the CPU's high figure). Per multiply-add:
/// from the fused multiply-add alone (1.5 pJ in half precision, Dally) to one
/// instruction's overhead for each (about 30 pJ, Dally).
pub const GPU: EnergyModel = EnergyModel {
    device: Device::Gpu,
    picojoules_per_byte: [32.0, 330.0],
    picojoules_per_multiply_add: [1.5, 30.0],
    sources: &[OCONNOR, DALLY, HOROWITZ],
};

pub fn energy_model(device: Device) -> &'static EnergyModel {
    match device {
        Device::Cpu => &CPU,
        Device::Gpu => &GPU,
    }
}

/// For scale: a published estimate of one text prompt to a large hosted assistant.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct HostedPrompt {
    pub watt_hours: f64,
    pub what: &'static str,
    pub source: &'static str,
}

pub const HOSTED_PROMPT: HostedPrompt = HostedPrompt {
    watt_hours: 0.24,
    what: "the median Gemini Apps text prompt (May 2025), data centre overhead included",
    source: "C. Elsworth et al., \"Measuring the environmental impact of delivering AI at Google Scale\", arXiv:2508.15734, 2025",
};

/// An answer's work, and the energy range it comes to on `device`.
#[derive(Debug, Clone, Copy, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Cost {
    #[serde(flatten)]
    pub work: Work,
    pub device: Device,
    /// [low, high] estimate in joules.
    pub joules: [f64; 2],
}

impl Cost {
    pub fn of(work: Work, device: Device) -> Cost {
        let m = energy_model(device);
        let bytes = (work.weight_bytes + work.cache_bytes) as f64;
        let ops = work.multiply_adds as f64;
        let joules = [0, 1].map(|i| {
            (bytes * m.picojoules_per_byte[i] + ops * m.picojoules_per_multiply_add[i]) * 1e-12
        });
        Cost {
            work,
            device,
            joules,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn energy_is_bytes_and_operations_times_their_figures() {
        let work = Work {
            weight_bytes: 150_000_000,
            cache_bytes: 50_000_000,
            multiply_adds: 1_000_000_000,
        };
        let c = Cost::of(work, Device::Cpu);
        // 2e8 bytes × 80 pJ + 1e9 × 2 pJ = 16 + 2 mJ; 2e8 × 330 pJ + 1e9 × 20 pJ = 86 mJ.
        assert!((c.joules[0] - 0.018).abs() < 1e-12, "{:?}", c.joules);
        assert!((c.joules[1] - 0.086).abs() < 1e-12, "{:?}", c.joules);
        // 2e8 × 32 pJ + 1e9 × 1.5 pJ = 6.4 + 1.5 mJ.
        let g = Cost::of(work, Device::Gpu);
        assert!((g.joules[0] - 0.0079).abs() < 1e-12, "{:?}", g.joules);
        assert_eq!(Cost::of(Work::default(), Device::Gpu).joules, [0.0, 0.0]);
        for m in [&CPU, &GPU] {
            assert!(m.picojoules_per_byte[0] < m.picojoules_per_byte[1]);
            assert!(m.picojoules_per_multiply_add[0] < m.picojoules_per_multiply_add[1]);
        }
    }
}
