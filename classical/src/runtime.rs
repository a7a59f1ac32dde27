//! Process-wide ONNX Runtime initialisation.

use std::path::{Path, PathBuf};
use std::sync::{Mutex, PoisonError};

use ort::environment::Environment;

use crate::ClassicalError;
use crate::kernels::{InstructionSets, Int8Products};

/// Environment variable naming the ONNX Runtime 1.31 shared library (`libonnxruntime.so.1.31.x`).
pub const ORT_DYLIB_PATH: &str = "ORT_DYLIB_PATH";

/// The loaded ONNX Runtime library and its one environment.
///
/// ONNX Runtime allows one environment per process, so [`OnnxRuntime::load`] creates it once and hands out
/// clones afterwards; a second call naming a different library is refused rather than silently ignored.
#[derive(Clone)]
pub struct OnnxRuntime {
    environment: Environment,
    library: PathBuf,
}

static RUNTIME: Mutex<Option<OnnxRuntime>> = Mutex::new(None);

impl OnnxRuntime {
    /// Loads the library at `library` (once per process) and returns the shared runtime.
    pub fn load(library: &Path) -> Result<Self, ClassicalError> {
        let mut slot = RUNTIME.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(runtime) = slot.as_ref() {
            if runtime.library != library {
                return Err(ClassicalError::Runtime {
                    path: library.to_path_buf(),
                    reason: format!("this process already loaded {}", runtime.library.display()),
                });
            }
            return Ok(runtime.clone());
        }
        let fail = |reason: String| ClassicalError::Runtime {
            path: library.to_path_buf(),
            reason,
        };
        if !library.is_file() {
            return Err(fail("no such file".to_owned()));
        }
        let environment = ort::init_from(library)
            .map_err(|e| fail(e.to_string()))?
            .with_name("switchyard")
            .build()
            .map_err(|e| fail(e.to_string()))?;
        let runtime = Self {
            environment,
            library: library.to_path_buf(),
        };
        *slot = Some(runtime.clone());
        Ok(runtime)
    }

    /// Loads the library named by the `ORT_DYLIB_PATH` environment variable.
    pub fn from_env() -> Result<Self, ClassicalError> {
        let path = std::env::var_os(ORT_DYLIB_PATH).ok_or_else(|| ClassicalError::Runtime {
            path: PathBuf::from(format!("${ORT_DYLIB_PATH}")),
            reason: "not set; run deploy/setup/onnxruntime.sh".to_owned(),
        })?;
        Self::load(Path::new(&path))
    }

    /// The environment sessions are created in.
    pub(crate) fn environment(&self) -> &Environment {
        &self.environment
    }

    /// Opens `path` as a session with one intra-op thread (parallelism comes from running several sessions) and
    /// exact int8 products on every CPU (`kernels`).
    pub fn session(&self, path: &Path) -> Result<ort::session::Session, ClassicalError> {
        self.session_with(path, Int8Products::Exact)
    }

    /// [`OnnxRuntime::session`] with the int8 products chosen: [`Int8Products::Native`] is for measuring only.
    pub fn session_with(&self, path: &Path, products: Int8Products) -> Result<ort::session::Session, ClassicalError> {
        let fail = |reason: String| ClassicalError::ModelLoad {
            path: path.to_path_buf(),
            reason,
        };
        let mut builder = ort::session::Session::builder(self.environment())
            .map_err(|e| fail(e.to_string()))?
            .with_intra_threads(1)
            .map_err(|e| fail(e.to_string()))?;
        if products.needs_precision_entry(&InstructionSets::detect()) {
            builder = builder.with_precise_qmm().map_err(|e| fail(e.to_string()))?;
        }
        builder.commit_from_file(path).map_err(|e| fail(e.to_string()))
    }
}
