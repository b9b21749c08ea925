//! SQL over the lake: the DataFusion session (every dataset as `layer.table`, workspace-scoped
//! and time-travelled on request), the read-only guard for user SQL, and result output.

mod error;
pub mod guard;
pub mod models;
pub mod output;
mod session;
pub mod sources;
pub mod udf;

pub use error::{Result, SqlError};
pub use output::Format;
pub use session::{SessionOptions, SqlSession};
