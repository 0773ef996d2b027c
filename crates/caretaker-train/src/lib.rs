//! Retraining: feature encoding fitted on training rows, and the candidate model families.
//!
//! A [`TrainedModel`] is everything needed to score raw events: the [`encoding::Encoding`]
//! (one-hot with a cap and an "other" bucket, standardisation), fitted on the training rows only,
//! and the classifier. It serialises with rmp-serde, byte for byte the same for the same data,
//! config and seed, and scores [`LabelledEvents`] directly, so the champion and the candidates go
//! through exactly the same code at evaluation.
//!
//! Families: linfa logistic regression, linfa decision tree, linfa Gaussian naive Bayes and
//! smartcore random forest. The trees of both tree families are flattened after fitting into
//! [`trees::FlatTree`], which routes a row exactly as the fitted tree does and carries each leaf's
//! share of positive training rows: neither linfa's tree nor smartcore's forest exposes class
//! probabilities, and ROC-AUC, log loss and the Brier score need them.
//!
//! ```no_run
//! # use caretaker_core::{config::*, events::LabelledEvents};
//! # fn example(spec: &CandidateSpec, training: &TrainingSpec, train: &LabelledEvents, holdout: &LabelledEvents) {
//! let model = caretaker_train::TrainedModel::fit(spec, training, train).unwrap();
//! let probabilities = model.predict_proba(holdout).unwrap();
//! let bytes = model.to_bytes();
//! # }
//! ```

pub mod encoding;
mod families;
pub mod trees;

use caretaker_core::config::{CandidateSpec, ModelParams, TrainingSpec};
use caretaker_core::events::LabelledEvents;
use serde::{Deserialize, Serialize};

pub use families::Classifier;

/// Why a model could not be trained or used.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("candidate {name} ({family}) failed to train: {reason}")]
    Fit { name: String, family: &'static str, reason: String },
    #[error("the model expects feature {feature:?}, which the data does not have")]
    MissingFeature { feature: String },
    #[error("the model file is not a readable model: {0}")]
    Decode(String),
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Bumped when the serialised form changes incompatibly.
pub const MODEL_FORMAT: u32 = 1;

/// A fitted model with its encoding.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TrainedModel {
    pub format: u32,
    pub name: String,
    pub params: ModelParams,
    pub encoding: encoding::Encoding,
    pub classifier: Classifier,
    /// Rows with a probability at or above this are predicted positive.
    pub threshold: f64,
}

impl TrainedModel {
    /// Fits the candidate on `train`.
    pub fn fit(spec: &CandidateSpec, training: &TrainingSpec, train: &LabelledEvents) -> Result<TrainedModel> {
        let fail = |reason: String| Error::Fit { name: spec.name.clone(), family: spec.params.family(), reason };
        if train.is_empty() {
            return Err(fail("no training rows".into()));
        }
        let positives = train.positives();
        if positives == 0 || positives == train.len() {
            return Err(fail(format!(
                "the training rows hold one class only ({positives} positives of {})",
                train.len()
            )));
        }
        let encoding = encoding::Encoding::fit(train, training.one_hot_max_levels);
        let x = encoding.transform(train)?;
        let classifier = families::fit(&spec.params, &x, &train.labels, training.seed).map_err(fail)?;
        Ok(TrainedModel {
            format: MODEL_FORMAT,
            name: spec.name.clone(),
            params: spec.params.clone(),
            encoding,
            classifier,
            threshold: 0.5,
        })
    }

    /// The probability that each row is positive.
    pub fn predict_proba(&self, events: &LabelledEvents) -> Result<Vec<f64>> {
        let x = self.encoding.transform(events)?;
        Ok(self.classifier.predict_proba(&x))
    }

    pub fn to_bytes(&self) -> Vec<u8> {
        rmp_serde::to_vec_named(self).expect("a model always serialises")
    }

    pub fn from_bytes(bytes: &[u8]) -> Result<TrainedModel> {
        let model: TrainedModel = rmp_serde::from_slice(bytes).map_err(|e| Error::Decode(e.to_string()))?;
        if model.format != MODEL_FORMAT {
            return Err(Error::Decode(format!(
                "model format {} is not the format this caretaker reads ({MODEL_FORMAT})",
                model.format
            )));
        }
        Ok(model)
    }
}
