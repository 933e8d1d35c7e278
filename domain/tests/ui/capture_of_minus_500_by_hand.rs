use domain::{CapturePayment, PaymentId, PaymentMethod};

fn main() -> Result<(), domain::ValidationError> {
    let _ = CapturePayment {
        payment_id: PaymentId::parse("pay_1")?,
        amount: -500,
        method: PaymentMethod::parse("card")?,
    };
    Ok(())
}
