-- Heartbeats from GPU workers say the device's total memory and what torch holds of it (/metrics).
alter table workers add column if not exists device_memory_total_bytes bigint;
alter table workers add column if not exists device_memory_allocated_bytes bigint;
