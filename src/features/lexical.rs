//! Layer-0 features: what a document's own tokens say before any transformer layer runs.
//!
//! A document's token ids (the model's own tokenizer, the GGUF vocabulary: no second tokenizer)
//! become a sparse vector of hashed unigrams and bigrams: every unigram and every pair of
//! neighbouring tokens is mapped by [`bucket_of`] into one of `buckets` buckets (a power of
//! two), counted, weighted by sublinear term frequency `1 + ln(count)` times the bucket's
//! inverse document frequency, and the vector scaled to unit length. This is the classic
//! TF-IDF bag of n-grams (what `TfidfVectorizer(sublinear_tf=True, ngram_range=(1, 2))`
//! computes) with the hashing trick, so that a pack stores one weight per bucket and class
//! whatever the vocabulary, and the features are a pure function of the token ids.

/// Default buckets of the hashed n-gram space: 2^18. Unigrams and bigrams of 5,000 reviews are
/// about 400,000 distinct n-grams; 2^18 buckets keep collisions among the frequent ones rare
/// and a binary head's weights at 2 MiB.
pub const DEFAULT_BUCKETS: usize = 1 << 18;

/// SplitMix64's output function: a fixed, well-mixed 64-bit hash of `key` (the first output of
/// a SplitMix64 generator seeded with `key`).
pub fn splitmix64(key: u64) -> u64 {
    let mut mixed = key.wrapping_add(0x9E37_79B9_7F4A_7C15);
    mixed = (mixed ^ (mixed >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    mixed = (mixed ^ (mixed >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    mixed ^ (mixed >> 31)
}

/// An n-gram of token ids.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Gram {
    /// One token.
    Unigram(u32),
    /// Two neighbouring tokens, in order.
    Bigram(u32, u32),
}

impl Gram {
    /// The 64-bit key hashed for the n-gram: a unigram's key is its id (below 2^32), a
    /// bigram's is `(first + 1) · 2^32 + second` (at least 2^32), so the two never share a key.
    pub fn key(self) -> u64 {
        match self {
            Gram::Unigram(token) => u64::from(token),
            Gram::Bigram(first, second) => ((u64::from(first) + 1) << 32) | u64::from(second),
        }
    }
}

/// The bucket of `gram` among `buckets` (a power of two).
pub fn bucket_of(gram: Gram, buckets: usize) -> u32 {
    debug_assert!(buckets.is_power_of_two());
    (splitmix64(gram.key()) & (buckets as u64 - 1)) as u32
}

/// A sparse vector: bucket indices in increasing order, each with its value.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SparseVector {
    /// Bucket indices, increasing, without repeats.
    pub indices: Vec<u32>,
    /// The value of each.
    pub values: Vec<f32>,
}

impl SparseVector {
    /// The dot product with a dense vector of at least `max(indices) + 1` entries.
    pub fn dot(&self, dense: &[f32]) -> f32 {
        self.indices
            .iter()
            .zip(&self.values)
            .map(|(&index, &value)| value * dense[index as usize])
            .sum()
    }
}

/// How many times each bucket occurs among a document's unigrams and bigrams, by bucket.
pub fn bucket_counts(tokens: &[u32], buckets: usize) -> Vec<(u32, u32)> {
    let unigrams = tokens.iter().map(|&token| Gram::Unigram(token));
    let bigrams = tokens.windows(2).map(|pair| Gram::Bigram(pair[0], pair[1]));
    let mut hashed: Vec<u32> = unigrams
        .chain(bigrams)
        .map(|gram| bucket_of(gram, buckets))
        .collect();
    hashed.sort_unstable();
    let mut counts: Vec<(u32, u32)> = Vec::new();
    for bucket in hashed {
        match counts.last_mut() {
            Some((last, count)) if *last == bucket => *count += 1,
            _ => counts.push((bucket, 1)),
        }
    }
    counts
}

/// Inverse document frequencies of every bucket over documents given by their
/// [`bucket_counts`]: `ln((1 + n) / (1 + df)) + 1` (scikit-learn's smoothed IDF), so that a
/// bucket no training document had weighs most and none weighs zero.
pub fn inverse_document_frequencies<'a>(
    documents: impl IntoIterator<Item = &'a [(u32, u32)]>,
    buckets: usize,
) -> Vec<f32> {
    let mut frequencies = vec![0u32; buckets];
    let mut count = 0usize;
    for counts in documents {
        count += 1;
        for &(bucket, _) in counts {
            frequencies[bucket as usize] += 1;
        }
    }
    let documents = count as f64;
    frequencies
        .into_iter()
        .map(|frequency| (((1.0 + documents) / (1.0 + f64::from(frequency))).ln() + 1.0) as f32)
        .collect()
}

/// The TF-IDF vector of a document's bucket counts: `(1 + ln count) · idf` per bucket, scaled
/// to unit Euclidean length (all zeros for a document without tokens).
pub fn tf_idf(counts: &[(u32, u32)], idf: &[f32]) -> SparseVector {
    let mut values: Vec<f32> = counts
        .iter()
        .map(|&(bucket, count)| (1.0 + (count as f32).ln()) * idf[bucket as usize])
        .collect();
    let norm = values.iter().map(|value| value * value).sum::<f32>().sqrt();
    if norm > 0.0 {
        values.iter_mut().for_each(|value| *value /= norm);
    }
    SparseVector {
        indices: counts.iter().map(|&(bucket, _)| bucket).collect(),
        values,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splitmix64_matches_the_reference_generator() {
        // The first outputs of SplitMix64 seeded with 0 (Vigna's reference implementation):
        // the generator adds the constant before mixing, so output k is splitmix64(k · γ).
        assert_eq!(splitmix64(0), 0xE220_A839_7B1D_CDAF);
        assert_eq!(splitmix64(0x9E37_79B9_7F4A_7C15), 0x6E78_9E6A_A1B9_65F4);
    }

    #[test]
    fn grams_have_disjoint_keys_and_hash_into_the_buckets() {
        assert_eq!(Gram::Unigram(7).key(), 7);
        assert_eq!(Gram::Bigram(0, 7).key(), (1 << 32) + 7);
        assert_eq!(Gram::Bigram(2, 3).key(), (3 << 32) + 3);
        assert_ne!(Gram::Bigram(2, 3).key(), Gram::Bigram(3, 2).key());
        // 0xE220A8397B1DCDAF & 0xF = 0xF.
        assert_eq!(bucket_of(Gram::Unigram(0), 16), 0xF);
        assert_eq!(
            bucket_of(Gram::Unigram(0), DEFAULT_BUCKETS),
            0x1_CDAF & 0x3_FFFF
        );
        for token in 0..1000 {
            assert!(bucket_of(Gram::Unigram(token), 64) < 64);
        }
    }

    #[test]
    fn counts_idf_and_tf_idf_match_hand_computed_values() {
        let buckets = 16;
        let bucket = |gram| bucket_of(gram, buckets);
        // Tokens 5 5 5: unigram 5 three times, bigram (5, 5) twice.
        let counts = bucket_counts(&[5, 5, 5], buckets);
        let mut expected = vec![
            (bucket(Gram::Unigram(5)), 3),
            (bucket(Gram::Bigram(5, 5)), 2),
        ];
        expected.sort_unstable();
        if expected[0].0 == expected[1].0 {
            expected = vec![(expected[0].0, 5)];
        }
        assert_eq!(counts, expected);
        assert!(bucket_counts(&[], buckets).is_empty());

        // Two documents; a bucket in one of them: ln(3 / 2) + 1; in none: ln 3 + 1.
        let first = vec![(1, 1), (4, 2)];
        let second = vec![(4, 1)];
        let idf = inverse_document_frequencies([first.as_slice(), second.as_slice()], 8);
        assert!((idf[1] - (1.5f32.ln() + 1.0)).abs() < 1e-6);
        assert!((idf[4] - 1.0).abs() < 1e-6);
        assert!((idf[0] - (3f32.ln() + 1.0)).abs() < 1e-6);

        // Raw weights (1 + ln 1) · idf[1] and (1 + ln 2) · 1, then unit length.
        let vector = tf_idf(&first, &idf);
        let raw = [idf[1], 1.0 + 2f32.ln()];
        let norm = (raw[0] * raw[0] + raw[1] * raw[1]).sqrt();
        assert_eq!(vector.indices, vec![1, 4]);
        assert!((vector.values[0] - raw[0] / norm).abs() < 1e-6);
        assert!((vector.values[1] - raw[1] / norm).abs() < 1e-6);
        let dense = [0.0, 2.0, 0.0, 0.0, -1.0, 0.0, 0.0, 0.0];
        assert!((vector.dot(&dense) - (2.0 * raw[0] - raw[1]) / norm).abs() < 1e-6);
        assert_eq!(tf_idf(&[], &idf), SparseVector::default());
    }
}
