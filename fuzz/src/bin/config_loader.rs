//! Fuzz target: the configuration loader (`config::Config::from_toml_str`,
//! which `Config::load` calls after reading the file). The input is the TOML
//! text, then optionally a NUL byte and `DM_*` environment variables, one
//! `NAME=value` a line. Beyond "no panic" it checks that an accepted
//! configuration serialises to TOML that loads again to the same
//! configuration, and that its listen addresses parse.

use datamiddleware::config::Config;

fn main() {
    afl::fuzz!(|data: &[u8]| {
        let (text, env) = match data.iter().position(|&b| b == 0) {
            Some(at) => (&data[..at], &data[at + 1..]),
            None => (data, &[][..]),
        };
        let (Ok(text), Ok(env)) = (std::str::from_utf8(text), std::str::from_utf8(env)) else {
            return;
        };
        // `items_file` names a file the loader reads; the fuzzer must not
        // make it read /dev/zero or its own queue, so such inputs are skipped.
        if data
            .windows(10)
            .any(|w| w.eq_ignore_ascii_case(b"items_file"))
        {
            return;
        }
        let vars: Vec<(String, String)> = env
            .lines()
            .filter_map(|l| l.split_once('='))
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        let Ok(config) = Config::from_toml_str(text, "fuzz", vars) else {
            return;
        };
        assert!(config.http_addr().is_ok() && config.tcp_addr().is_ok());
        let rendered = toml::to_string(&config).expect("an accepted config serialises");
        let again = Config::from_toml_str(&rendered, "rendered", Vec::new())
            .unwrap_or_else(|e| panic!("rendered config refused: {e}\n{rendered}"));
        let rendered_again = toml::to_string(&again).expect("serialises");
        assert_eq!(rendered, rendered_again);
    });
}
