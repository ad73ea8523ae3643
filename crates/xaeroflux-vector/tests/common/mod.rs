//! Shared test data: seeded clustered gaussians.
#![allow(dead_code)]

/// Deterministic normal samples (SplitMix64 + Box-Muller).
pub struct Gauss(u64);

impl Gauss {
    pub fn new(seed: u64) -> Self {
        Self(seed)
    }

    fn unit(&mut self) -> f64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        (((z ^ (z >> 31)) >> 11) + 1) as f64 / (1u64 << 53) as f64
    }

    pub fn normal(&mut self) -> f32 {
        let (u, v) = (self.unit(), self.unit());
        ((-2.0 * u.ln()).sqrt() * (std::f64::consts::TAU * v).cos()) as f32
    }
}

/// Intrinsic dimension of the generated clusters.
const LATENT: usize = 32;

/// `n` points of dimension `dim` around `clusters` random centres. Like real
/// embeddings, each cluster varies along a few directions: a point is its centre plus
/// `sigma` times a gaussian in a random 32-dimensional subspace (drawn per cluster from
/// a generator fixed by the centre count, so sets with different `seed` share the
/// clusters), plus 10 % isotropic noise.
pub fn clustered(n: usize, dim: usize, clusters: usize, sigma: f32, seed: u64) -> Vec<Vec<f32>> {
    let mut shape = Gauss::new(clusters as u64 * 0x1000 + dim as u64);
    let centres: Vec<Vec<f32>> = (0..clusters)
        .map(|_| (0..dim).map(|_| shape.normal()).collect())
        .collect();
    let bases: Vec<Vec<f32>> = (0..clusters)
        .map(|_| {
            (0..dim * LATENT)
                .map(|_| shape.normal() / (LATENT as f32).sqrt())
                .collect()
        })
        .collect();
    let mut g = Gauss::new(seed);
    (0..n)
        .map(|i| {
            let c = i % clusters;
            let z: Vec<f32> = (0..LATENT).map(|_| g.normal()).collect();
            (0..dim)
                .map(|d| {
                    let along: f32 = z
                        .iter()
                        .enumerate()
                        .map(|(l, zl)| zl * bases[c][d * LATENT + l])
                        .sum();
                    centres[c][d] + sigma * along + 0.1 * g.normal()
                })
                .collect()
        })
        .collect()
}
