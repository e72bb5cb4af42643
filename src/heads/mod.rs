//! The classifier heads: one per layer, each a standardisation, a multinomial logistic
//! regression and a temperature ([`logistic`]), trained on cached sentence-prefix features with
//! the penalty and temperature chosen by cross-fitting on the training data ([`training`]).

pub mod lexical;
pub mod logistic;
pub mod training;

pub use logistic::{LayerHead, LinearHead, Standardizer, argmax, softmax};
pub use training::{LayerReport, TrainedHeads, train_heads};
