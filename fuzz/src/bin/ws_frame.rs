//! Fuzz target: the WebSocket frame decoder (`realtime::frame::Decoder`)
//! as a socket drives it — client frames, masked, unmasked in place,
//! fragments joined. Beyond "no panic" it checks that a decode reads a
//! whole frame or nothing, that a message never exceeds the limit, and that
//! the same bytes give the same messages (or the same violation) whether
//! they come at once or cut at any point, as reads deliver them.

use datamiddleware::realtime::frame::{Decoded, Decoder, Message, Violation};

/// SPEC §11's limit, and a small one so "too big" (1009) is reached.
const LIMITS: [usize; 2] = [64 * 1024, 16];

/// What one stream of bytes decodes to: its messages, then the violation
/// that ended it, if any.
fn run(input: &[u8], cut: usize, limit: usize) -> (Vec<Message>, Option<Violation>) {
    let mut decoder = Decoder::new(limit);
    let mut buf: Vec<u8> = Vec::new();
    let mut messages = Vec::new();
    let cut = cut.min(input.len());
    for chunk in [&input[..cut], &input[cut..]] {
        buf.extend_from_slice(chunk);
        loop {
            let before = buf.len();
            match decoder.decode(&mut buf) {
                Err(v) => return (messages, Some(v)),
                Ok(Decoded { used: 0, message }) => {
                    assert!(message.is_none(), "a message without bytes read");
                    break;
                }
                Ok(Decoded { used, message }) => {
                    assert!(used <= before, "read past the buffer");
                    buf.drain(..used);
                    if let Some(m) = message {
                        let len = match &m {
                            Message::Text(t) => t.len(),
                            Message::Binary(b) | Message::Ping(b) => b.len(),
                            _ => 0,
                        };
                        assert!(len <= limit, "a message over the limit");
                        messages.push(m);
                    }
                }
            }
        }
    }
    (messages, None)
}

fn main() {
    afl::fuzz!(|data: &[u8]| {
        let Some((&selector, input)) = data.split_first() else {
            return;
        };
        let limit = LIMITS[usize::from(selector & 1)];
        let whole = run(input, input.len(), limit);
        let cut = usize::from(selector >> 1) * input.len() / 127;
        let split = run(input, cut, limit);
        assert_eq!(whole.0, split.0, "messages depend on how reads cut the bytes");
        assert_eq!(whole.1.map(|v| v.code), split.1.map(|v| v.code));
    });
}
