ALTER TABLE "email_sends" DROP CONSTRAINT "email_sends_status_check";--> statement-breakpoint
ALTER TABLE "email_sends" ALTER COLUMN "message_id" DROP NOT NULL;--> statement-breakpoint
ALTER TABLE "email_sends" ADD COLUMN "request_id" text;--> statement-breakpoint
CREATE INDEX "email_sends_pending_idx" ON "email_sends" USING btree ("registration_id") WHERE "email_sends"."status" = 'pending';--> statement-breakpoint
ALTER TABLE "email_sends" ADD CONSTRAINT "email_sends_sent_message_id_check" CHECK ("email_sends"."status" <> 'sent' or "email_sends"."message_id" is not null);--> statement-breakpoint
ALTER TABLE "email_sends" ADD CONSTRAINT "email_sends_status_check" CHECK ("email_sends"."status" in ('pending', 'queued', 'sending', 'sent', 'failed'));