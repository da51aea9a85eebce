//! Kafka's topic id (a UUID, new each time a topic is created) for a topic name.
//!
//! librdkafka has it through its DescribeTopics admin call; rust-rdkafka does not wrap that call,
//! so it is made here through `rdkafka::bindings`, on the client's own connection and
//! configuration (TLS and SASL included).

use std::ffi::{CStr, CString};
use std::time::Duration;

use rdkafka::bindings as rd;
use rdkafka::client::Client;
use rdkafka::ClientContext;

/// Kafka's topic UUID through librdkafka's DescribeTopics (rust-rdkafka does not wrap it).
/// None when the broker gives none (the all-zero UUID).
#[allow(unsafe_code)]
pub fn describe<C: ClientContext>(
    client: &Client<C>,
    topic: &str,
    timeout: Duration,
) -> Result<Option<String>, String> {
    let name = CString::new(topic).map_err(|_| format!("topic name {topic:?} holds a NUL byte"))?;
    let rk = client.native_ptr();
    // SAFETY: every object created here is destroyed before returning, the event's results are
    // read before the event is destroyed, and `rk` outlives the call (it is borrowed from `client`).
    unsafe {
        let names = [name.as_ptr()];
        let topics = rd::rd_kafka_TopicCollection_of_topic_names(names.as_ptr() as *mut _, 1);
        let options = rd::rd_kafka_AdminOptions_new(rk, rd::rd_kafka_admin_op_t::RD_KAFKA_ADMIN_OP_DESCRIBETOPICS);
        let mut errstr = [0 as std::os::raw::c_char; 256];
        rd::rd_kafka_AdminOptions_set_request_timeout(
            options,
            timeout.as_millis() as i32,
            errstr.as_mut_ptr(),
            errstr.len(),
        );
        let queue = rd::rd_kafka_queue_new(rk);
        rd::rd_kafka_DescribeTopics(rk, topics, options, queue);
        let event = rd::rd_kafka_queue_poll(queue, (timeout.as_millis() + 1000) as i32);
        let result = if event.is_null() {
            Err("describing the topic timed out".to_owned())
        } else if rd::rd_kafka_event_error(event) != rd::rd_kafka_resp_err_t::RD_KAFKA_RESP_ERR_NO_ERROR {
            Err(format!("describing the topic: {}", text(rd::rd_kafka_event_error_string(event))))
        } else {
            let described = rd::rd_kafka_event_DescribeTopics_result(event);
            let mut count = 0usize;
            let descriptions = rd::rd_kafka_DescribeTopics_result_topics(described, &mut count);
            if count == 0 || descriptions.is_null() {
                Err("describing the topic returned nothing".to_owned())
            } else {
                let description = *descriptions;
                let error = rd::rd_kafka_TopicDescription_error(description);
                if !error.is_null()
                    && rd::rd_kafka_error_code(error) != rd::rd_kafka_resp_err_t::RD_KAFKA_RESP_ERR_NO_ERROR
                {
                    Err(format!("describing topic {topic}: {}", text(rd::rd_kafka_error_string(error))))
                } else {
                    let id = rd::rd_kafka_TopicDescription_topic_id(description);
                    if id.is_null()
                        || (rd::rd_kafka_Uuid_most_significant_bits(id) == 0
                            && rd::rd_kafka_Uuid_least_significant_bits(id) == 0)
                    {
                        Ok(None)
                    } else {
                        Ok(Some(text(rd::rd_kafka_Uuid_base64str(id))))
                    }
                }
            }
        };
        if !event.is_null() {
            rd::rd_kafka_event_destroy(event);
        }
        rd::rd_kafka_queue_destroy(queue);
        rd::rd_kafka_AdminOptions_destroy(options);
        rd::rd_kafka_TopicCollection_destroy(topics);
        result
    }
}

/// # Safety
/// `p` is null or a NUL-terminated string that lives while this runs.
#[allow(unsafe_code)]
unsafe fn text(p: *const std::os::raw::c_char) -> String {
    if p.is_null() {
        String::new()
    } else {
        CStr::from_ptr(p).to_string_lossy().into_owned()
    }
}
