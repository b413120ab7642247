//! Hostile fixture: a component of another world that happens to export a `route` function.

wit_bindgen::generate!({
    inline: r#"
        package other:thing;
        world calculator {
            export route: func(a: u32, b: u32) -> u32;
        }
    "#,
});

struct Calculator;

impl Guest for Calculator {
    fn route(a: u32, b: u32) -> u32 {
        a.wrapping_add(b)
    }
}

export!(Calculator);
