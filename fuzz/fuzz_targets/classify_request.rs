//! The body of `POST /v1/classify` on arbitrary bytes: a checked request or the reason for a
//! 4xx answer, never a panic.
#![no_main]

use exitwise::server::request::{ClassifyBody, ClassifyRequest, Documents};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|bytes: &[u8]| {
    let Ok(body) = serde_json::from_slice::<ClassifyBody>(bytes) else {
        return;
    };
    if let Ok(request) = ClassifyRequest::try_from(body) {
        let count = request.documents.len();
        assert!(count > 0);
        let batch = matches!(request.documents, Documents::Batch(_));
        let documents = request.documents.with_ids(request.id.as_deref());
        assert_eq!(documents.len(), count);
        assert!(batch || count == 1);
        assert!(documents.iter().all(|(_, text)| !text.trim().is_empty()));
    }
});
