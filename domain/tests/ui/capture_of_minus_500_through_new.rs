use domain::{CapturePayment, PaymentId, PaymentMethod};

fn main() -> Result<(), domain::ValidationError> {
    let _ = CapturePayment::new(PaymentId::parse("pay_1")?, -500, PaymentMethod::parse("card")?);
    Ok(())
}
