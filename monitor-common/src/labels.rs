//! Enums whose variants are both array indexes (in the per-CPU maps) and
//! metric label values. One macro gives each its `COUNT`, `ALL` in index
//! order and `name()`, so a new variant cannot be forgotten in one of them.

/// Declares a `#[repr(int)]` enum with `COUNT`, `ALL` and `name()`:
///
/// ```
/// monitor_common::labelled_enum! {
///     /// Doc.
///     pub enum Colour: u8 {
///         /// Doc.
///         Red = 0 => "red",
///         Blue = 1 => "blue",
///     }
/// }
/// assert_eq!(Colour::ALL[1].name(), "blue");
/// assert_eq!(Colour::COUNT, 2);
/// ```
#[macro_export]
macro_rules! labelled_enum {
    (
        $(#[$meta:meta])*
        $vis:vis enum $name:ident: $repr:ty {
            $( $(#[$vmeta:meta])* $variant:ident = $value:literal => $label:literal ),+ $(,)?
        }
    ) => {
        $(#[$meta])*
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
        #[repr($repr)]
        $vis enum $name {
            $( $(#[$vmeta])* $variant = $value ),+
        }

        impl $name {
            pub const COUNT: usize = [$($value),+].len();
            /// Every variant, in index order.
            pub const ALL: [Self; Self::COUNT] = [$(Self::$variant),+];

            /// The metric label value.
            pub const fn name(self) -> &'static str {
                match self {
                    $(Self::$variant => $label),+
                }
            }

            /// The variant whose label value is `name`.
            pub fn from_name(name: &str) -> Option<Self> {
                Self::ALL.into_iter().find(|v| v.name() == name)
            }
        }

        // ALL must be in index order: the daemon reads arrays through it.
        const _: () = {
            let mut i = 0;
            while i < $name::COUNT {
                assert!($name::ALL[i] as usize == i);
                i += 1;
            }
        };
    };
}
