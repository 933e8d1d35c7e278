use domain::{Currency, Money, PlaceOrder};

fn main() -> Result<(), domain::ValidationError> {
    let mut order: PlaceOrder = todo_order()?;
    order.total = Money::new(-42, Currency::parse("EUR")?);
    Ok(())
}

fn todo_order() -> Result<PlaceOrder, domain::ValidationError> {
    Err(domain::ValidationError::new("items", "none"))
}
