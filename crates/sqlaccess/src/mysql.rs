use crate::{Classified, Scope};

/// See [`crate::classify`].
pub(crate) fn classify(_sql: &str, scope: &Scope) -> Classified {
    Classified::unclassified(scope, 1)
}
