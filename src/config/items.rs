//! A game's catalogue seed: the inline `games.<id>.items` and the JSON file
//! `games.<id>.items_file`. A file of its own because two steps read the seed:
//! validation checks every entry by the catalogue's rules (`crate::validate`,
//! the admin API's too), and start-up seeding asks [`Config::item_seed`].

use super::error::{err, ConfigError};
use super::sections::{Config, ItemSeed};

impl Config {
    /// The catalogue seed of a game: inline `items`, then `items_file`.
    pub fn item_seed(&self, game_id: &str) -> Result<Vec<ItemSeed>, ConfigError> {
        let Some(game) = self.games.get(game_id) else {
            return Ok(Vec::new());
        };
        let mut items = game.items.clone();
        if !game.items_file.is_empty() {
            items.extend(
                load_items_file(&game.items_file)
                    .map_err(|e| err(format!("key `games.{game_id}.items_file`: {e}")))?,
            );
        }
        Ok(items)
    }
}

/// Reads a game's `items_file`: a JSON array of catalogue entries. The
/// message names the file; callers add the key.
pub(super) fn load_items_file(path: &str) -> Result<Vec<ItemSeed>, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("cannot read {path}: {e}"))?;
    serde_json::from_str(&text).map_err(|e| format!("{path}: {e}"))
}

/// A seed entry obeys the catalogue's one rule set, the admin API's too.
pub(super) fn validate_item_seed(game: &str, item: &ItemSeed) -> Result<(), ConfigError> {
    let fields = crate::validate::CatalogueFields {
        name: Some(&item.name),
        item_type: Some(&item.item_type),
        quality: Some(&item.quality),
        description: Some(&item.description),
        price_gold: Some(item.price_gold),
        price_diamonds: Some(item.price_diamonds),
        max_stack: Some(item.max_stack),
    };
    crate::validate::item_id(&item.item_id)
        .and_then(|()| crate::validate::catalogue_fields(&fields))
        .map_err(|e| {
            err(format!(
                "key `games.{game}.items`: item `{}`: {e}",
                item.item_id
            ))
        })
}

#[cfg(test)]
mod tests {
    use crate::config::tests::load_str;

    #[test]
    fn item_seed_comes_from_config_and_file() {
        let path = std::env::temp_dir().join(format!("dm-items-{}.json", rand::random::<u64>()));
        std::fs::write(&path, r#"[{"item_id":"bow","name":"Bow","price_gold":5}]"#).expect("write");
        let text = format!(
            "[auth]\nmode = \"dev\"\n[games.game1]\nitems_file = \"{}\"\n[[games.game1.items]]\nitem_id = \"sword\"\nname = \"Sword\"\n",
            path.display()
        );
        let c = load_str(&text, &[]).expect("loads");
        let ids: Vec<String> = c
            .item_seed("game1")
            .expect("seed")
            .into_iter()
            .map(|i| i.item_id)
            .collect();
        assert_eq!(ids, vec!["sword", "bow"]);
        std::fs::write(&path, r#"[{"item_id":"bad id","name":"X"}]"#).expect("write");
        let e = load_str(&text, &[]).unwrap_err();
        assert!(e.0.contains("games.game1.items"), "{e}");
        let _ = std::fs::remove_file(&path);
    }

    #[test]
    fn item_seeds_obey_the_admin_api_caps() {
        // Each of these passes the old config-only checks but not the
        // catalogue rule set the admin API applies.
        for (field, value, named) in [
            ("price_gold", "1000000000001", "price_gold"),
            ("max_stack", "1000001", "max_stack"),
            ("description", "\"a\\nb\"", "description"),
            ("type", &format!("\"{}\"", "t".repeat(33)), "type"),
        ] {
            let text = format!(
                "[auth]\nmode = \"dev\"\n[games.game1]\n[[games.game1.items]]\nitem_id = \"sword\"\nname = \"Sword\"\n{field} = {value}\n"
            );
            let e = load_str(&text, &[]).unwrap_err();
            assert!(
                e.0.contains("games.game1.items") && e.0.contains(named),
                "{e}"
            );
        }
    }
}
