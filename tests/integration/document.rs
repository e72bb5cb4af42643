//! Preparing documents with the model's own tokenizer: sentences, document start, token limit.

use exitwise::text::{DocumentError, prepare_document};

use crate::common::{TestModel, shared_model};

#[test]
fn the_document_start_token_opens_the_first_sentence_only() {
    let Some(model) = shared_model(TestModel::Gemma) else {
        return;
    };
    let start = model.document_start_tokens();
    assert_eq!(start.len(), 1, "gemma adds BOS");
    let document =
        prepare_document(model, "One sentence. Another one.\nA third", 2048).expect("prepare");
    assert_eq!(document.sentences.len(), 3);
    assert!(!document.truncated);
    assert_eq!(document.sentences[0].tokens[0], start[0]);
    for sentence in &document.sentences[1..] {
        assert!(!sentence.tokens.contains(&start[0]));
    }
    assert_eq!(
        document.token_count(),
        crate::common::all_tokens(&document).len()
    );
}

#[test]
fn the_token_limit_truncates_and_says_so() {
    let Some(model) = shared_model(TestModel::Gemma) else {
        return;
    };
    let text =
        "The film starts well. The middle drags on and on. The ending is a mess. I left early.";
    let whole = prepare_document(model, text, 2048).expect("prepare");
    assert!(!whole.truncated);
    let limit = whole.sentences[0].tokens.len() + 2;
    let cut = prepare_document(model, text, limit).expect("prepare");
    assert!(cut.truncated);
    assert_eq!(cut.token_count(), limit);
    assert_eq!(cut.sentences.len(), 2, "the second sentence is cut short");
    assert_eq!(cut.sentences_in_document, 4);
    // A limit that ends exactly at a sentence boundary still reports the cut.
    let exact = prepare_document(model, text, whole.sentences[0].tokens.len()).expect("prepare");
    assert!(exact.truncated);
    assert_eq!(exact.sentences.len(), 1);
}

#[test]
fn empty_documents_and_useless_limits_are_errors() {
    let Some(model) = shared_model(TestModel::Gemma) else {
        return;
    };
    assert!(matches!(
        prepare_document(model, "", 2048),
        Err(DocumentError::Empty)
    ));
    assert!(matches!(
        prepare_document(model, " \n\t\n ", 2048),
        Err(DocumentError::Empty)
    ));
    assert!(matches!(
        prepare_document(model, "Fine.", 1),
        Err(DocumentError::LimitTooSmall(1))
    ));
}

#[test]
fn control_token_spellings_in_text_stay_plain_text() {
    let Some(model) = shared_model(TestModel::Gemma) else {
        return;
    };
    // In gemma's vocabulary `<start_of_turn>` is one control token; a document must not be able
    // to produce it.
    let tokens = model.tokenize("<start_of_turn>user").expect("tokenize");
    assert!(
        tokens.len() > 2,
        "spelled out as ordinary pieces: {tokens:?}"
    );
}
