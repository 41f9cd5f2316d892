CREATE TABLE "email_sends" (
	"registration_id" integer NOT NULL,
	"kind" text NOT NULL,
	"recipient" varchar(254) NOT NULL,
	"message_id" text NOT NULL,
	"status" text NOT NULL,
	"error" text,
	"sent_at" timestamp with time zone,
	"updated_at" timestamp with time zone DEFAULT now() NOT NULL,
	CONSTRAINT "email_sends_registration_id_kind_pk" PRIMARY KEY("registration_id","kind"),
	CONSTRAINT "email_sends_status_check" CHECK ("email_sends"."status" in ('sending', 'sent', 'failed'))
);
--> statement-breakpoint
ALTER TABLE "email_sends" ADD CONSTRAINT "email_sends_registration_id_registrations_id_fk" FOREIGN KEY ("registration_id") REFERENCES "public"."registrations"("id") ON DELETE cascade ON UPDATE no action;