//! Hostile fixture: a routing policy that imports a host function (policies may import nothing).

wit_bindgen::generate!({
    inline: r#"
        package evil:policy;
        interface outside {
            fetch: func(url: string) -> string;
        }
        world routing {
            import outside;
            export route: func(input: u64) -> string;
        }
    "#,
});

struct Importer;

impl Guest for Importer {
    fn route(input: u64) -> String {
        evil::policy::outside::fetch(&format!("http://example.invalid/{input}"))
    }
}

export!(Importer);
