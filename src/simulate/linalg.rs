//! A small dense linear solver: LU decomposition with partial pivoting, for the exact oracle's
//! fundamental matrix `N = (I − Q)^-1` (a chain has about ten states, so dense is right).

/// A dense row-major matrix of `f64`.
#[derive(Debug, Clone, PartialEq)]
pub struct Matrix {
    rows: usize,
    cols: usize,
    data: Vec<f64>,
}

impl Matrix {
    /// The `rows × cols` zero matrix.
    pub fn zeros(rows: usize, cols: usize) -> Self {
        Self {
            rows,
            cols,
            data: vec![0.0; rows * cols],
        }
    }

    /// The `n × n` identity.
    pub fn identity(n: usize) -> Self {
        let mut m = Self::zeros(n, n);
        for i in 0..n {
            m[(i, i)] = 1.0;
        }
        m
    }

    /// A matrix from its rows; every row must have the same length.
    pub fn from_rows(rows: &[Vec<f64>]) -> Option<Self> {
        let cols = rows.first().map_or(0, Vec::len);
        if rows.iter().any(|r| r.len() != cols) {
            return None;
        }
        Some(Self {
            rows: rows.len(),
            cols,
            data: rows.iter().flatten().copied().collect(),
        })
    }

    pub fn rows(&self) -> usize {
        self.rows
    }

    pub fn cols(&self) -> usize {
        self.cols
    }

    /// Row `i` as a slice.
    pub fn row(&self, i: usize) -> &[f64] {
        &self.data[i * self.cols..(i + 1) * self.cols]
    }

    /// The product `self · other`; `None` when the shapes do not chain.
    pub fn mul(&self, other: &Matrix) -> Option<Matrix> {
        if self.cols != other.rows {
            return None;
        }
        let mut out = Matrix::zeros(self.rows, other.cols);
        for i in 0..self.rows {
            for k in 0..self.cols {
                let a = self[(i, k)];
                if a == 0.0 {
                    continue;
                }
                for j in 0..other.cols {
                    out[(i, j)] += a * other[(k, j)];
                }
            }
        }
        Some(out)
    }

    /// The product `self · v`; `None` when the length is not `cols`.
    pub fn mul_vec(&self, v: &[f64]) -> Option<Vec<f64>> {
        if v.len() != self.cols {
            return None;
        }
        Some(
            (0..self.rows)
                .map(|i| self.row(i).iter().zip(v).map(|(a, b)| a * b).sum())
                .collect(),
        )
    }
}

impl std::ops::Index<(usize, usize)> for Matrix {
    type Output = f64;
    fn index(&self, (i, j): (usize, usize)) -> &f64 {
        &self.data[i * self.cols + j]
    }
}

impl std::ops::IndexMut<(usize, usize)> for Matrix {
    fn index_mut(&mut self, (i, j): (usize, usize)) -> &mut f64 {
        &mut self.data[i * self.cols + j]
    }
}

/// Why a matrix cannot be factored.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum LuError {
    #[error("the matrix is {rows}×{cols}, not square")]
    NotSquare { rows: usize, cols: usize },
    /// No usable pivot in column `column`: the matrix is singular (to working precision).
    #[error("the matrix is singular: no pivot in column {column}")]
    Singular { column: usize },
    #[error("the right-hand side has {got} rows, the system {expected}")]
    ShapeMismatch { expected: usize, got: usize },
}

/// `P·A = L·U` of a square matrix, with `L` unit lower triangular and `U` upper triangular,
/// stored together in one matrix; `perm[i]` is the row of `A` in row `i` of `P·A`.
#[derive(Debug, Clone)]
pub struct Lu {
    lu: Matrix,
    perm: Vec<usize>,
}

/// Pivots below this (relative to the largest entry of the matrix) count as zero.
const PIVOT_TOLERANCE: f64 = 1e-12;

impl Lu {
    /// Factors `a` with partial pivoting (the largest remaining entry of each column as pivot).
    pub fn factor(a: &Matrix) -> Result<Self, LuError> {
        if a.rows != a.cols {
            return Err(LuError::NotSquare {
                rows: a.rows,
                cols: a.cols,
            });
        }
        let n = a.rows;
        let scale = a.data.iter().fold(0.0f64, |m, v| m.max(v.abs()));
        let tiny = PIVOT_TOLERANCE * scale.max(f64::MIN_POSITIVE);
        let mut lu = a.clone();
        let mut perm: Vec<usize> = (0..n).collect();
        for k in 0..n {
            let (p, best) = (k..n)
                .map(|i| (i, lu[(i, k)].abs()))
                .fold((k, -1.0), |acc, x| if x.1 > acc.1 { x } else { acc });
            // A NaN pivot fails too.
            if best.is_nan() || best <= tiny {
                return Err(LuError::Singular { column: k });
            }
            if p != k {
                for j in 0..n {
                    lu.data.swap(k * n + j, p * n + j);
                }
                perm.swap(k, p);
            }
            let pivot = lu[(k, k)];
            for i in k + 1..n {
                let factor = lu[(i, k)] / pivot;
                lu[(i, k)] = factor;
                if factor == 0.0 {
                    continue;
                }
                for j in k + 1..n {
                    let u = lu[(k, j)];
                    lu[(i, j)] -= factor * u;
                }
            }
        }
        Ok(Self { lu, perm })
    }

    /// Solves `A·x = b`.
    pub fn solve(&self, b: &[f64]) -> Result<Vec<f64>, LuError> {
        let n = self.lu.rows;
        if b.len() != n {
            return Err(LuError::ShapeMismatch {
                expected: n,
                got: b.len(),
            });
        }
        // Forward substitution with the permuted right-hand side (L has a unit diagonal).
        let mut x: Vec<f64> = self.perm.iter().map(|&p| b[p]).collect();
        for i in 0..n {
            let s: f64 = (0..i).map(|j| self.lu[(i, j)] * x[j]).sum();
            x[i] -= s;
        }
        // Back substitution.
        for i in (0..n).rev() {
            let s: f64 = (i + 1..n).map(|j| self.lu[(i, j)] * x[j]).sum();
            x[i] = (x[i] - s) / self.lu[(i, i)];
        }
        Ok(x)
    }

    /// Solves `A·X = B` column by column.
    pub fn solve_matrix(&self, b: &Matrix) -> Result<Matrix, LuError> {
        if b.rows != self.lu.rows {
            return Err(LuError::ShapeMismatch {
                expected: self.lu.rows,
                got: b.rows,
            });
        }
        let mut out = Matrix::zeros(b.rows, b.cols);
        let mut column = vec![0.0; b.rows];
        for j in 0..b.cols {
            for (i, c) in column.iter_mut().enumerate() {
                *c = b[(i, j)];
            }
            let x = self.solve(&column)?;
            for (i, v) in x.into_iter().enumerate() {
                out[(i, j)] = v;
            }
        }
        Ok(out)
    }

    /// `A^-1`.
    pub fn inverse(&self) -> Matrix {
        let n = self.lu.rows;
        self.solve_matrix(&Matrix::identity(n))
            .expect("the identity has as many rows as the factored matrix")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(a: &[f64], b: &[f64], tol: f64) -> bool {
        a.len() == b.len() && a.iter().zip(b).all(|(x, y)| (x - y).abs() <= tol)
    }

    #[test]
    fn solves_a_small_system_by_hand() {
        // 2x + y - z = 8, -3x - y + 2z = -11, -2x + y + 2z = -3  =>  (2, 3, -1).
        let a = Matrix::from_rows(&[
            vec![2.0, 1.0, -1.0],
            vec![-3.0, -1.0, 2.0],
            vec![-2.0, 1.0, 2.0],
        ])
        .unwrap();
        let x = Lu::factor(&a).unwrap().solve(&[8.0, -11.0, -3.0]).unwrap();
        assert!(close(&x, &[2.0, 3.0, -1.0], 1e-12), "{x:?}");
    }

    #[test]
    fn pivots_past_a_zero_on_the_diagonal() {
        // Without row exchanges the first pivot is 0.
        let a = Matrix::from_rows(&[vec![0.0, 1.0], vec![1.0, 1.0]]).unwrap();
        let x = Lu::factor(&a).unwrap().solve(&[2.0, 3.0]).unwrap();
        assert!(close(&x, &[1.0, 2.0], 1e-12), "{x:?}");
        // A tiny pivot: partial pivoting keeps the answer accurate.
        let a = Matrix::from_rows(&[vec![1e-17, 1.0], vec![1.0, 1.0]]).unwrap();
        let x = Lu::factor(&a).unwrap().solve(&[1.0, 2.0]).unwrap();
        assert!(close(&x, &[1.0, 1.0], 1e-12), "{x:?}");
    }

    #[test]
    fn refuses_singular_and_non_square_matrices() {
        let a = Matrix::from_rows(&[vec![1.0, 2.0], vec![2.0, 4.0]]).unwrap();
        assert_eq!(Lu::factor(&a).unwrap_err(), LuError::Singular { column: 1 });
        let a = Matrix::zeros(2, 3);
        assert!(matches!(
            Lu::factor(&a).unwrap_err(),
            LuError::NotSquare { rows: 2, cols: 3 }
        ));
        let lu = Lu::factor(&Matrix::identity(2)).unwrap();
        assert!(lu.solve(&[1.0]).is_err());
    }

    #[test]
    fn inverse_times_matrix_is_the_identity() {
        // A 10×10 non-symmetric matrix with a pseudo-random pattern.
        let n = 10;
        let mut a = Matrix::zeros(n, n);
        let mut x: u64 = 12345;
        for i in 0..n {
            for j in 0..n {
                x = crate::simulate::rng::mix64(x.wrapping_add(1));
                a[(i, j)] = (x >> 11) as f64 / (1u64 << 53) as f64 - 0.5;
            }
        }
        let inv = Lu::factor(&a).unwrap().inverse();
        let product = a.mul(&inv).unwrap();
        let identity = Matrix::identity(n);
        assert!(
            close(&product.data, &identity.data, 1e-10),
            "{:?}",
            product.data
        );
    }

    #[test]
    fn fundamental_matrix_of_a_two_state_chain() {
        // Q = [[0, 0.5], [0.25, 0]]: N = (I - Q)^-1 = 1/(1 - 0.125) · [[1, 0.5], [0.25, 1]].
        let q = Matrix::from_rows(&[vec![0.0, 0.5], vec![0.25, 0.0]]).unwrap();
        let mut i_q = Matrix::identity(2);
        for i in 0..2 {
            for j in 0..2 {
                i_q[(i, j)] -= q[(i, j)];
            }
        }
        let n = Lu::factor(&i_q).unwrap().inverse();
        let d = 1.0 / 0.875;
        assert!(close(&n.data, &[d, 0.5 * d, 0.25 * d, d], 1e-12), "{n:?}");
        assert_eq!(n.mul_vec(&[1.0, 1.0]).unwrap().len(), 2);
    }
}
