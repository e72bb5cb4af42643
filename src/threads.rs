//! Work spread over threads without losing a panic or an order.

/// What a panic said: its message when it was a string (as `panic!` and `assert!` make it).
pub fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    payload
        .downcast_ref::<&str>()
        .map(|message| (*message).to_string())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "no message".to_string())
}

/// `work` applied to every item on up to `threads` threads, results in the items' order.
///
/// Threads take the next item when they are free (items may differ in cost by orders of
/// magnitude, as calibration settings and model layers do, and the costly ones often sit
/// together in the list, so fixed chunks would leave one thread with most of the work). A panic
/// in `work` is not swallowed: it reaches the caller, with its message, once the other threads
/// stopped, so no result can shift onto another item.
pub fn map_in_parallel<Item: Sync, Output: Send>(
    items: &[Item],
    threads: usize,
    work: impl Fn(&Item) -> Output + Sync,
) -> Vec<Output> {
    let threads = threads.clamp(1, items.len().max(1));
    let next = std::sync::atomic::AtomicUsize::new(0);
    let (next, work) = (&next, &work);
    let mut numbered: Vec<(usize, Output)> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..threads)
            .map(|_| {
                scope.spawn(move || {
                    let mut done = Vec::new();
                    loop {
                        let index = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                        let Some(item) = items.get(index) else {
                            return done;
                        };
                        done.push((index, work(item)));
                    }
                })
            })
            .collect();
        let mut numbered = Vec::with_capacity(items.len());
        let mut panic = None;
        for handle in handles {
            match handle.join() {
                Ok(done) => numbered.extend(done),
                Err(payload) => panic = Some(payload),
            }
        }
        if let Some(payload) = panic {
            std::panic::resume_unwind(payload);
        }
        numbered
    });
    numbered.sort_unstable_by_key(|(index, _)| *index);
    assert_eq!(numbered.len(), items.len(), "every item has its result");
    numbered.into_iter().map(|(_, output)| output).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn results_keep_the_order_and_a_panic_fails_the_whole_run() {
        let items: Vec<u64> = (0..50).collect();
        // Costs that differ a lot, the costly ones together: results still in order.
        let squares = map_in_parallel(&items, 3, |&item| {
            if item < 5 {
                std::thread::sleep(std::time::Duration::from_millis(20));
            }
            item * item
        });
        assert_eq!(
            squares,
            items.iter().map(|item| item * item).collect::<Vec<_>>()
        );
        // One panicking item: the caller panics with its message, never gets the others'
        // results shifted onto the wrong items.
        let outcome = std::panic::catch_unwind(|| {
            map_in_parallel(&items, 3, |&item| {
                assert!(item != 17, "setting 17 is broken");
                item
            })
        });
        let payload = outcome.expect_err("the panic reaches the caller");
        assert_eq!(panic_message(&*payload), "setting 17 is broken");
    }
}
