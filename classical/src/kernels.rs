//! The machine as ONNX Runtime's kernels see it, and how an int8 model's matrix products are computed on it.
//!
//! ONNX Runtime picks its kernels by instruction set. For a dynamically quantized model (the request encoder) the
//! one that changes answers is the u8 × s8 matrix product: with VNNI (`VPDPBUSD`) every product is summed in 32
//! bits; on x86 CPUs with AVX2 or AVX-512 but no VNNI, `VPMADDUBSW` sums each pair of neighbouring products in
//! saturating 16 bits, and a pair over 32,767 is clamped. Measured on an AMD EPYC (AVX2, no VNNI) with the
//! shipped encoder: its parity fixtures moved by up to 0.097 and 32 of 3,100 CLINC150 validation answers changed
//! label (`classical/training/probes/int8_saturation.py` makes the smallest graph that shows it). ONNX Runtime's
//! session entry `session.x64quantprecision` rewrites the int8 weights to u8 and runs its u8 × u8 kernel, which
//! is exact; every session is opened with it where the clamp is live, so an int8 model answers alike on every
//! x86-64 CPU (the fixtures then agree to 2.4e-7).

use serde::Serialize;

/// The instruction sets ONNX Runtime dispatches on, as this process detects them (all `false` off x86-64).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct InstructionSets {
    /// AVX2 (x86-64-v3): the float and int8 kernels most x86-64 servers run.
    pub avx2: bool,
    /// FMA3: fused multiply-add in the float kernels.
    pub fma: bool,
    /// AVX-512 foundation.
    pub avx512f: bool,
    /// AVX-512 byte and word instructions (ONNX Runtime's AVX-512 int8 kernels need them).
    pub avx512bw: bool,
    /// AVX-512 VNNI: exact u8 × s8 dot products in 32 bits.
    pub avx512_vnni: bool,
    /// AVX-VNNI (VNNI on 256-bit vectors, e.g. Alder Lake): exact u8 × s8 dot products in 32 bits.
    pub avx_vnni: bool,
}

impl InstructionSets {
    /// What this CPU has.
    #[cfg(target_arch = "x86_64")]
    pub fn detect() -> Self {
        Self {
            avx2: std::arch::is_x86_feature_detected!("avx2"),
            fma: std::arch::is_x86_feature_detected!("fma"),
            avx512f: std::arch::is_x86_feature_detected!("avx512f"),
            avx512bw: std::arch::is_x86_feature_detected!("avx512bw"),
            avx512_vnni: std::arch::is_x86_feature_detected!("avx512vnni"),
            avx_vnni: std::arch::is_x86_feature_detected!("avxvnni"),
        }
    }

    /// What this CPU has (none of the x86-64 sets on other architectures).
    #[cfg(not(target_arch = "x86_64"))]
    pub fn detect() -> Self {
        Self {
            avx2: false,
            fma: false,
            avx512f: false,
            avx512bw: false,
            avx512_vnni: false,
            avx_vnni: false,
        }
    }

    /// Exact 32-bit u8 × s8 dot products in hardware.
    pub fn vnni(&self) -> bool {
        self.avx512_vnni || self.avx_vnni
    }

    /// Whether ONNX Runtime's default u8 × s8 kernel on this CPU sums pairs of products in saturating 16 bits
    /// (x86-64 with AVX2 or AVX-512, no VNNI; ONNX Runtime's Linux build uses exact 16-bit widening below AVX2).
    pub fn u8s8_saturates(&self) -> bool {
        cfg!(target_arch = "x86_64") && (self.avx2 || self.avx512bw) && !self.vnni()
    }

    /// One line for reports and test output, e.g. `AVX2 yes, FMA yes, AVX-512 no, VNNI no`.
    pub fn summary(&self) -> String {
        let yes = |b: bool| if b { "yes" } else { "no" };
        let avx512 = match (self.avx512f, self.avx512bw) {
            (true, true) => "yes",
            (true, false) => "F only",
            _ => "no",
        };
        let vnni = match (self.avx512_vnni, self.avx_vnni) {
            (true, true) => "yes (AVX-512 and AVX)",
            (true, false) => "yes (AVX-512)",
            (false, true) => "yes (AVX)",
            (false, false) => "no",
        };
        format!(
            "AVX2 {}, FMA {}, AVX-512 {avx512}, VNNI {vnni}",
            yes(self.avx2),
            yes(self.fma)
        )
    }
}

/// How a session computes int8 (u8 × s8) matrix products.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Int8Products {
    /// Exact on every CPU: VNNI where the CPU has it, else ONNX Runtime's u8 × u8 kernel where its u8 × s8 one
    /// would saturate. What the gateway serves.
    Exact,
    /// ONNX Runtime's default kernel for this CPU, saturating where [`InstructionSets::u8s8_saturates`]. Only for
    /// measuring what exactness is worth (`switchyard-evals`); never served.
    Native,
}

impl Int8Products {
    /// Whether a session on a CPU with `sets` needs ONNX Runtime's precision entry to compute these products.
    pub fn needs_precision_entry(self, sets: &InstructionSets) -> bool {
        self == Self::Exact && sets.u8s8_saturates()
    }

    /// The kernel that runs on a CPU with `sets`, for reports: e.g. `u8×u8 AVX2 (exact)`.
    pub fn kernel(self, sets: &InstructionSets) -> String {
        let width = if sets.avx512bw { "AVX-512" } else { "AVX2" };
        if !cfg!(target_arch = "x86_64") {
            "native (exact)".to_owned()
        } else if sets.avx512_vnni {
            "u8×s8 AVX-512 VNNI (exact)".to_owned()
        } else if sets.avx_vnni {
            "u8×s8 AVX-VNNI (exact)".to_owned()
        } else if !sets.u8s8_saturates() {
            "u8×s8 SSE, 16-bit widening (exact)".to_owned()
        } else if self == Self::Exact {
            format!("u8×u8 {width} (exact; session.x64quantprecision)")
        } else {
            format!("u8×s8 {width} VPMADDUBSW (pairs saturate at 16 bits)")
        }
    }
}

/// The CPU's model name (`/proc/cpuinfo`), when the system says.
pub fn cpu_model() -> Option<String> {
    let info = std::fs::read_to_string("/proc/cpuinfo").ok()?;
    info.lines().find_map(|line| {
        line.strip_prefix("model name")?
            .split_once(':')
            .map(|(_, v)| v.trim().to_owned())
    })
}

/// The machine in one line for reports: CPU model, instruction sets and the int8 kernel the gateway serves.
pub fn machine_summary() -> String {
    let sets = InstructionSets::detect();
    format!(
        "{} ({}); int8 products: {}",
        cpu_model().unwrap_or_else(|| std::env::consts::ARCH.to_owned()),
        sets.summary(),
        Int8Products::Exact.kernel(&sets)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sets(avx2: bool, avx512: bool, vnni: bool) -> InstructionSets {
        InstructionSets {
            avx2,
            fma: avx2,
            avx512f: avx512,
            avx512bw: avx512,
            avx512_vnni: vnni && avx512,
            avx_vnni: vnni && !avx512,
        }
    }

    #[test]
    #[cfg(target_arch = "x86_64")]
    fn the_precision_entry_is_asked_for_only_where_the_products_would_saturate() {
        let avx2 = sets(true, false, false);
        let avx512 = sets(true, true, false);
        let avx512_vnni = sets(true, true, true);
        let alder_lake = sets(true, false, true);
        let sse_only = sets(false, false, false);
        assert!(Int8Products::Exact.needs_precision_entry(&avx2));
        assert!(Int8Products::Exact.needs_precision_entry(&avx512));
        for exact_anyway in [avx512_vnni, alder_lake, sse_only] {
            assert!(
                !Int8Products::Exact.needs_precision_entry(&exact_anyway),
                "{exact_anyway:?}"
            );
        }
        assert!(!Int8Products::Native.needs_precision_entry(&avx2));
        assert_eq!(
            Int8Products::Native.kernel(&avx2),
            "u8×s8 AVX2 VPMADDUBSW (pairs saturate at 16 bits)"
        );
        assert_eq!(
            Int8Products::Exact.kernel(&avx512),
            "u8×u8 AVX-512 (exact; session.x64quantprecision)"
        );
        assert_eq!(Int8Products::Native.kernel(&avx512_vnni), "u8×s8 AVX-512 VNNI (exact)");
    }

    #[test]
    fn the_summary_names_each_set() {
        assert_eq!(
            sets(true, false, false).summary(),
            "AVX2 yes, FMA yes, AVX-512 no, VNNI no"
        );
        assert_eq!(
            sets(true, true, true).summary(),
            "AVX2 yes, FMA yes, AVX-512 yes, VNNI yes (AVX-512)"
        );
    }
}
