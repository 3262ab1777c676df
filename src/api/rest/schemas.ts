import type { FastifySchema, FastifySchemaCompiler, FastifySchemaValidationError } from 'fastify';
import { type TSchema, Type } from 'typebox';
import { Compile } from 'typebox/compile';
import { Value } from 'typebox/value';

/*
 * What every /v1 route shares: the error answer, the ways to authenticate, and validation
 * errors rewritten into one sentence that names the field and what it must be.
 *
 * A route declares its schema beside its handler (summary, tags, body, querystring, params,
 * response); the plugin validates requests with TypeBox (bodies as sent, querystrings and
 * path parameters converted from text) and openapi.ts documents every such route.
 */

declare module 'fastify' {
  // What the OpenAPI document reads from a route's schema besides the validated parts.
  interface FastifySchema {
    summary?: string;
    description?: string;
    tags?: readonly string[];
    /** Who may call: the OpenAPI security requirement; `[]` is public. Default: the bearer token. */
    security?: readonly Record<string, readonly string[]>[];
    operationId?: string;
    deprecated?: boolean;
    /** Left out of the OpenAPI document. */
    hide?: boolean;
  }
}

/** Every /v1 refusal: `{"error": "…"}` with a fitting HTTP status. */
export const ErrorShape = Type.Object({ error: Type.String({ description: 'what went wrong, for a person to read' }) });

/** The admin token, or a scoped API token, as `Authorization: Bearer …`. */
export const BEARER = { bearer: [] } as const;
/** A logged-in device's station, for calls about the user's own devices. */
export const STATION = { ozekiStation: [] } as const;

export const SECURITY = {
  admin: [BEARER],
  selfOrAdmin: [BEARER, STATION],
  public: [],
} as const;

/** Answered with no body (204). */
export const NoContent = Type.Null({ description: 'no content' });

export const NonEmptyString = (options: { description?: string; maxLength?: number } = {}) => Type.String({ minLength: 1, ...options });

/**
 * Validates each part of a request against its TypeBox (or plain JSON) schema. A body is
 * taken as sent: Fastify's default validator would turn 42 into "42" or "3" into 3. Path and
 * query parameters arrive as text, so they are converted to what they declare and take their
 * declared defaults.
 */
export const validatorCompiler: FastifySchemaCompiler<TSchema> = ({ schema, httpPart }) => {
  const validator = Compile(schema);
  const fromText = httpPart !== 'body';
  return (input: unknown) => {
    const value = fromText ? Value.Default(schema, Value.Convert(schema, input)) : input;
    if (validator.Check(value)) return { value };
    return { error: validator.Errors(value) as unknown as FastifySchemaValidationError[] };
  };
};

type Schema = Record<string, unknown> | boolean;

const CONTEXT_NAMES: Record<string, string> = {
  body: '',
  querystring: 'query parameter ',
  params: 'path parameter ',
  headers: 'header ',
};

/** True for the error Fastify raises when a request does not match its route's schema. */
export function isValidationError(
  error: unknown,
): error is Error & { validation: FastifySchemaValidationError[]; validationContext?: string } {
  return typeof error === 'object' && error !== null && Array.isArray((error as { validation?: unknown }).validation);
}

/**
 * One sentence for a refused request, naming the field and what it must be:
 * `email must be a non-empty string`, `query parameter limit must be a whole number from 1 to 1000`.
 */
export function validationMessage(
  errors: readonly FastifySchemaValidationError[],
  context: string | undefined,
  routeSchema: FastifySchema | undefined,
): string {
  const part = context ?? 'body';
  const root = (routeSchema as Record<string, Schema> | undefined)?.[part];
  const error = mostSpecific(errors);
  if (!error) return `the request's ${part} is not valid`;
  const prefix = CONTEXT_NAMES[part] ?? `${part} `;
  const params = error.params as Record<string, unknown>;
  const at = pathSegments(error.instancePath);
  const schemaPath = (error as { schemaPath?: string }).schemaPath ?? '#';
  let schema = root === undefined ? undefined : schemaAt(root, schemaPath);

  if (error.keyword === 'required') {
    const missing = firstOf(params.requiredProperties ?? params.missingProperty);
    if (missing !== undefined) {
      at.push(missing);
      schema = propertySchema(schema, missing);
    }
  } else if (error.keyword === 'additionalProperties') {
    const extra = firstOf(params.additionalProperties ?? params.additionalProperty);
    if (extra !== undefined) return `${prefix}${fieldName([...at, extra])} is not a field of this call`;
  }
  if (schema === false) return `${prefix}${fieldName(at)} is not a field of this call`;
  if (at.length === 0 && part === 'body' && error.keyword === 'type') return 'the body must be a JSON object';
  const what = typeof schema === 'object' ? expected(schema) : undefined;
  const subject = at.length === 0 ? `the ${part === 'querystring' ? 'query' : part}` : `${prefix}${fieldName(at)}`;
  return what ? `${subject} must be ${what}` : `${subject} ${error.message ?? 'is not valid'}`;
}

/** The error about the deepest field, and of those the one about the widest schema (a union, not one of its branches). */
function mostSpecific(errors: readonly FastifySchemaValidationError[]): FastifySchemaValidationError | undefined {
  let best: FastifySchemaValidationError | undefined;
  for (const error of errors) {
    if (!best) best = error;
    else {
      const depth = pathSegments(error.instancePath).length - pathSegments(best.instancePath).length;
      const width = schemaDepth(error) - schemaDepth(best);
      if (depth > 0 || (depth === 0 && width < 0)) best = error;
    }
  }
  return best;
}

function schemaDepth(error: FastifySchemaValidationError): number {
  return ((error as { schemaPath?: string }).schemaPath ?? '#').split('/').length;
}

function firstOf(value: unknown): string | undefined {
  const first = Array.isArray(value) ? value[0] : value;
  return typeof first === 'string' ? first : undefined;
}

function pathSegments(pointer: string | undefined): string[] {
  if (!pointer) return [];
  return pointer
    .split('/')
    .slice(1)
    .map((segment) => segment.replace(/~1/g, '/').replace(/~0/g, '~'));
}

/** `pushsubscription.keys.auth`, `ids[3]`. */
function fieldName(segments: readonly string[]): string {
  return segments.reduce((name, segment) => (/^\d+$/.test(segment) ? `${name}[${segment}]` : name ? `${name}.${segment}` : segment), '');
}

function schemaAt(root: Schema, schemaPath: string): Schema | undefined {
  let schema: unknown = root;
  for (const segment of pathSegments(schemaPath.replace(/^#/, ''))) {
    if (typeof schema !== 'object' || schema === null) return undefined;
    schema = (schema as Record<string, unknown>)[segment];
  }
  return typeof schema === 'object' || typeof schema === 'boolean' ? (schema as Schema) : undefined;
}

function propertySchema(schema: Schema | undefined, name: string): Schema | undefined {
  if (typeof schema !== 'object') return undefined;
  const properties = schema.properties as Record<string, Schema> | undefined;
  return properties?.[name];
}

/** What a value of the schema is, in words: `a string of at most 4096 characters or null`. */
function expected(schema: Record<string, unknown>): string | undefined {
  const branches = (schema.anyOf ?? schema.oneOf) as Record<string, unknown>[] | undefined;
  if (Array.isArray(branches)) {
    const words = branches.map(expected);
    if (words.some((w) => w === undefined)) return undefined;
    return words.length === 1 ? words[0] : `${words.slice(0, -1).join(', ')} or ${words.at(-1)}`;
  }
  if ('const' in schema) return JSON.stringify(schema.const);
  if (Array.isArray(schema.enum)) return `one of ${schema.enum.join(', ')}`;
  switch (schema.type) {
    case 'string':
      return stringWords(schema);
    case 'integer':
      return `a whole number${range(schema)}`;
    case 'number':
      return `a number${range(schema)}`;
    case 'boolean':
      return 'true or false';
    case 'null':
      return 'null';
    case 'array':
      return 'an array';
    case 'object':
      return 'an object';
    default:
      return undefined;
  }
}

function stringWords(schema: Record<string, unknown>): string {
  const min = typeof schema.minLength === 'number' ? schema.minLength : 0;
  const max = typeof schema.maxLength === 'number' ? schema.maxLength : undefined;
  let words = min === 1 ? 'a non-empty string' : min > 1 ? `a string of at least ${min} characters` : 'a string';
  if (max !== undefined) words += min > 1 ? ` and at most ${max}` : ` of at most ${max} characters`;
  if (typeof schema.pattern === 'string') words += ` matching ${schema.pattern}`;
  return words;
}

function range(schema: Record<string, unknown>): string {
  const min = typeof schema.minimum === 'number' ? schema.minimum : undefined;
  const max = typeof schema.maximum === 'number' ? schema.maximum : undefined;
  if (min !== undefined && max !== undefined) return ` from ${min} to ${max}`;
  if (min !== undefined) return ` of at least ${min}`;
  if (max !== undefined) return ` of at most ${max}`;
  return '';
}
